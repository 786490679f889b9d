#pragma once
/// The notification participant: tells the customer the order went through.
/// A retriable step after the pivot: its failure never fails the order, but
/// the outcome is recorded (and shown in the order's detail).
///
/// State (RocksDB, a fold of the compacted changelog orders.notification.sent):
///   notification/<order_id>  Notification — at most one per order; a repeated
///                            command is answered from it.
/// REST: GET /notifications/{order_id}, plus the participant routes (/set).

#include <memory>

#include "sagaflow/runtime/participant.hpp"

namespace sagaflow::notification {

std::unique_ptr<runtime::Participant> MakeNotification(runtime::ServiceOptions options,
                                                       runtime::ParticipantOptions participant);

}  // namespace sagaflow::notification
