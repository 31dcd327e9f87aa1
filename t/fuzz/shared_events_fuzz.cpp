// Channel messages and stream entries read back from Redis on arbitrary
// bytes: nothing crashes, whatever is accepted is within the bounds the
// glue relies on, and an accepted event encodes back to the same text.
#include "fuzz_check.hpp"
#include "mcp_session/shared_events.hpp"

#include <cstdint>
#include <string>
#include <string_view>

using namespace mcp_session;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    const shared_message m = decode_shared_message(bytes);
    switch (m.what) {
    case shared_message::type::event: {
        const shared_event& e = m.event;
        FUZZ_CHECK(e.id > 0);
        FUZZ_CHECK((e.flags & ~shared_flags_known) == 0);
        FUZZ_CHECK(e.kind == event_kind::message || e.kind == event_kind::progress || e.kind == event_kind::init);
        FUZZ_CHECK(e.kind != event_kind::init || (e.post_stream != 0 && e.payload.empty()));
        FUZZ_CHECK((e.post_stream == 0) == ((e.flags & shared_flag_framed) == 0 && e.kind != event_kind::init));
        const std::string again = "E" + std::to_string(e.id) + " " + encode_shared_event_body(e);
        FUZZ_CHECK(again == bytes);
        break;
    }
    case shared_message::type::listener:
        FUZZ_CHECK(!m.listener.empty() && m.listener.size() <= max_listener_name);
        break;
    case shared_message::type::malformed:
        break;
    }
    const std::uint64_t id = shared_entry_id(bytes);
    FUZZ_CHECK(id == 0 || bytes == "0-" + std::to_string(id));
    return 0;
}
