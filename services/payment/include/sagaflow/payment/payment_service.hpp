#pragma once
/// The payment participant: charges the customer. It is the saga's pivot: once
/// a charge succeeds the saga completes, so a charge is never compensated.
///
/// State (RocksDB, a fold of the compacted changelog orders.payment.payments):
///   payment/<order_id>  Payment — the charge (or refusal) recorded for the order;
///                       a repeated command is answered from it.
/// REST: GET /payments/{order_id}, plus the participant routes (/set).

#include <memory>

#include "sagaflow/runtime/participant.hpp"

namespace sagaflow::payment {

std::unique_ptr<runtime::Participant> MakePayment(runtime::ServiceOptions options,
                                                  runtime::ParticipantOptions participant);

}  // namespace sagaflow::payment
