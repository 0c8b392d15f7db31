// pairguardctl events: the recent events of the store's capped stream
// (events_stream), and with --follow the new ones as they come. Needs Redis
// but no secret: events carry only labels.
#pragma once

namespace pairguard::cli {

// `pairguardctl [--redis ADDRESS] [--prefix STR] events [--follow] [--json]
// [--count N]` (any argument order); returns the exit status.
int events_main(int argc, char** argv);

}  // namespace pairguard::cli
