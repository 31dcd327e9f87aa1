// The replay decision: for any ring window and cursor, the plan sends only
// events the ring still holds, announces exactly the ones it lost, and a
// client resuming from what it was sent gets the rest without gaps.
#include "fuzz_check.hpp"
#include "mcp_session/replay.hpp"

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

using namespace mcp_session;

namespace {

constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();

void check_window(const ring_window& ring)
{
    FUZZ_CHECK(ring.retained() <= ring.capacity);
    FUZZ_CHECK(ring.oldest() >= 1);
    FUZZ_CHECK(ring.oldest() <= ring.next_id);
    FUZZ_CHECK(ring.next_id - ring.oldest() == ring.retained());
    FUZZ_CHECK(ring.full() == (ring.retained() == ring.capacity));
}

void check_plan(std::uint64_t cursor, const ring_window& ring, const replay_plan& plan)
{
    const std::uint64_t newest = ring.newest();
    FUZZ_CHECK(plan.last_id == newest);
    if (cursor >= newest) {
        // Up to date, or an id from the future: nothing to send, nothing lost.
        FUZZ_CHECK(!plan.has_events());
        FUZZ_CHECK(plan.dropped == 0);
        FUZZ_CHECK(plan.count() == 0);
        return;
    }
    FUZZ_CHECK(plan.has_events());
    FUZZ_CHECK(plan.first_id > cursor);
    FUZZ_CHECK(plan.first_id == std::max(cursor + 1, ring.oldest()));
    // Only ids the ring still holds, each in its own slot.
    FUZZ_CHECK(plan.first_id >= ring.oldest());
    FUZZ_CHECK(plan.last_id <= newest);
    FUZZ_CHECK(plan.count() <= ring.retained());
    FUZZ_CHECK(plan.count() == plan.last_id - plan.first_id + 1);
    FUZZ_CHECK(ring.slot(plan.first_id) < ring.capacity && ring.slot(plan.last_id) < ring.capacity);
    // Every id the client lacks is either lost (and counted) or sent.
    FUZZ_CHECK(plan.dropped == plan.first_id - (cursor + 1));
    FUZZ_CHECK(plan.dropped + plan.count() == newest - cursor);
    FUZZ_CHECK((plan.dropped > 0) == (cursor + 1 < ring.oldest()));
    if (plan.dropped > 0) {
        FUZZ_CHECK(plan.first_id >= 2);  // the lagged notice's id, first_id - 1, is a real id
    }
}

// Resuming from the lagged notice or from any event sent continues the
// sequence exactly.
void check_resume(const ring_window& ring, const replay_plan& plan, std::uint64_t pick)
{
    if (plan.dropped > 0) {
        const replay_plan again = plan_replay(plan.first_id - 1, ring);
        FUZZ_CHECK(again.dropped == 0 && again.first_id == plan.first_id && again.last_id == plan.last_id);
    }
    if (!plan.has_events()) {
        return;
    }
    const std::uint64_t delivered = plan.first_id + pick % plan.count();
    const replay_plan rest = plan_replay(delivered, ring);
    FUZZ_CHECK(rest.dropped == 0);
    FUZZ_CHECK(rest.first_id == delivered + 1);
    FUZZ_CHECK(rest.count() == plan.last_id - delivered);
    FUZZ_CHECK(!plan_replay(plan.last_id, ring).has_events());
}

// A client that read up to the newest id, then `more` events were published.
void check_after_publishing(const ring_window& ring, std::uint64_t more)
{
    if (ring.next_id > u64_max - more) {
        return;
    }
    ring_window later = ring;
    later.next_id += more;
    check_window(later);
    const replay_plan plan = plan_replay(ring.newest(), later);
    check_plan(ring.newest(), later, plan);
    FUZZ_CHECK(plan.dropped + plan.count() == more);
    FUZZ_CHECK(plan.dropped == (more > later.capacity ? more - later.capacity : 0));
}

// Small rings are checked against a real one: each id sent is still in its slot.
void check_against_model(std::uint64_t cursor, const ring_window& ring, const replay_plan& plan)
{
    if (ring.next_id > 4096 || ring.capacity > 4096) {
        return;
    }
    std::vector<std::uint64_t> slots(ring.capacity, 0);
    for (std::uint64_t id = 1; id < ring.next_id; ++id) {
        slots[ring.slot(id)] = id;
    }
    std::uint64_t lost = 0;
    for (std::uint64_t id = cursor + 1; id < ring.next_id && cursor < u64_max; ++id) {
        const bool held = slots[ring.slot(id)] == id;
        const bool sent = plan.has_events() && id >= plan.first_id && id <= plan.last_id;
        FUZZ_CHECK(held == sent);
        lost += held ? 0 : 1;
    }
    FUZZ_CHECK(lost == plan.dropped);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size)
{
    FuzzedDataProvider input(bytes, size);
    ring_window ring;
    // The module's rings hold 1..65536 events and ids start at 1.
    ring.capacity = input.ConsumeIntegralInRange<std::uint32_t>(1, 65536);
    ring.next_id = input.ConsumeBool() ? input.ConsumeIntegralInRange<std::uint64_t>(1, 5000)
                                       : input.ConsumeIntegralInRange<std::uint64_t>(1, u64_max);
    const std::uint64_t offset = input.ConsumeIntegralInRange<std::uint64_t>(0, 70000);
    std::uint64_t cursor = 0;
    switch (input.ConsumeIntegralInRange(0, 3)) {
    case 0:  // behind the newest event
        cursor = ring.newest() >= offset ? ring.newest() - offset : 0;
        break;
    case 1:  // around the oldest retained one
        cursor = ring.oldest() >= offset ? ring.oldest() - offset : 0;
        break;
    case 2:  // ahead (a stale or foreign id)
        cursor = ring.newest() <= u64_max - offset ? ring.newest() + offset : u64_max;
        break;
    default:
        cursor = input.ConsumeIntegral<std::uint64_t>();
        break;
    }
    const std::uint64_t pick = input.ConsumeIntegral<std::uint64_t>();
    const std::uint64_t more = input.ConsumeIntegralInRange<std::uint64_t>(0, 200000);

    check_window(ring);
    const replay_plan plan = plan_replay(cursor, ring);
    check_plan(cursor, ring, plan);
    check_resume(ring, plan, pick);
    check_after_publishing(ring, more);
    check_against_model(cursor, ring, plan);
    return 0;
}
