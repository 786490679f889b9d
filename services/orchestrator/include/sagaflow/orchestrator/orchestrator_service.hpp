#pragma once
/// The orchestrator: drives every order saga with the event-sourced aggregate
/// of core/saga_aggregate.hpp. Each input (OrderPlaced, a participant's reply,
/// a deadline passing) goes through Decide; the resulting events are appended
/// to orders.saga.events as one record (SagaEvents) and the commands / final
/// status sent, all in one Kafka transaction with the input offsets.
///
/// State (RocksDB, a fold of orders.saga.events and orders.saga.state):
///   ev/<saga id, 20 digits>/<version, 10 digits>  an events record as read
///       (SagaEvents, or one SagaEvent from earlier versions), under the
///       version of its first event
///   snap/<saga id>                               the saga's latest SagaState
/// snap/ follows every input; the compacted orders.saga.state gets each saga's
/// final state, with the events watermark. At start the events and snapshots
/// after the stored offsets are replayed; with an empty data directory only the
/// snapshots are read (not the whole history). Sagas not ended carry on, their
/// deadlines included (deadlines are part of the state and the events).
/// REST: GET /sagas/{id} (state and event history), GET /sagas?state=&limit=.
/// After a rebuild from snapshots, the events from before the rebuild are not
/// stored locally: the saga's state and step history are complete, its event
/// list starts at the rebuild ("history_complete": false).
/// Owned and used by one thread, except the REST handlers, which only read.

#include <memory>

#include "sagaflow/core/saga_definition.hpp"
#include "sagaflow/runtime/service.hpp"

namespace sagaflow::orchestrator {

struct OrchestratorOptions {
  core::OrderSagaTimings timings;
};

std::unique_ptr<runtime::Service> MakeOrchestrator(runtime::ServiceOptions options, OrchestratorOptions orchestrator);

}  // namespace sagaflow::orchestrator
