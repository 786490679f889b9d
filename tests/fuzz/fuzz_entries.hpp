#pragma once
/// The entry functions of the fuzz targets: each takes arbitrary bytes, runs
/// them through one untrusted-input path of the system, and checks the
/// properties that path promises. They return "" when every property holds,
/// otherwise what broke; a crash, a sanitizer report or an uncaught exception
/// is a finding too.
///
/// The same functions run in two places: the libFuzzer binaries
/// (SAGAFLOW_FUZZ=ON, clang; fuzz_main.cpp aborts on a non-empty answer) and
/// the unit test tests/unit/fuzz/fuzz_corpus_test.cpp, which replays each
/// target's committed corpus (seeds/ and regressions/ under
/// tests/fuzz/corpus/<target>/) with any compiler.
/// Thread safety: callable from one thread at a time (shared participants).

#include <string>
#include <string_view>
#include <vector>

namespace sagaflow::fuzz {

/// core::Decode on a record value: never throws; whatever decodes encodes
/// again and decodes to the same message.
std::string FuzzDecode(std::string_view bytes);

/// POST /neworder's body through ParseJsonBody and OrderFromJson: either an
/// order that keeps the documented bounds (and round-trips through
/// OrderToJson and the codec), or an HttpError with a 4xx status whose JSON
/// answer can be written; nothing else.
std::string FuzzOrderJson(std::string_view bytes);

/// A command record as a participant receives it, through Decode and
/// InvalidCommandRecord (the checks made before a record touches state), for
/// the warehouse, payment and notification participants. Input layout: byte
/// 0 picks the participant (bits 0-1: warehouse, payment, notification, all)
/// and, with bit 2 set, bytes 1.. give the record key (byte 1 = its length);
/// otherwise the key is the decoded saga id's. The rest is the record value.
/// An accepted command must keep what the state code relies on; a rejected
/// one must make a dead letter that decodes back intact.
std::string FuzzParticipantRecord(std::string_view bytes);

/// The orchestrator's handling of one saga's inputs: after the reference
/// order starts saga 42, each 3-byte group of the input is one input as the
/// orchestrator lets it reach core::Decide (a reply, through Encode and
/// Decode, only while the saga runs; a tick only past the pending deadline;
/// the OrderPlaced again). Every event Decide records is folded with Apply and
/// handed to a replay::Replayer with verify: no invariant may break, and the
/// log must replay to the same decisions. Group layout: byte 0 picks the kind
/// (0 reply, 1 tick of byte 1 seconds + byte 2 ms, 2 OrderPlaced again, 3
/// reply with a detail), byte 1 the step (reply), byte 2 the attempt (bits
/// 1-7) and OK (bit 0).
std::string FuzzSagaInputs(std::string_view bytes);

/// A target: its name (the folder under tests/fuzz/corpus/) and entry.
struct Target {
  const char* name;
  std::string (*entry)(std::string_view);
};
const std::vector<Target>& Targets();

}  // namespace sagaflow::fuzz
