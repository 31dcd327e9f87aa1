// Records and tokens read back from Redis on arbitrary bytes: nothing
// crashes, whatever is accepted is within the bounds the glue relies on,
// and a record accepted encodes back to one that decodes to the same.
#include "fuzz_check.hpp"
#include "mcp_session/shared_record.hpp"
#include "mcp_session/status.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace mcp_session;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);
    if (const auto key = key_from_shared_token(bytes)) {
        FUZZ_CHECK(shared_token(*key) == bytes);
    }
    // Fields split at NUL bytes: field, value, field, value...
    std::vector<std::string_view> fields;
    std::size_t start = 0;
    for (std::size_t i = 0; i <= bytes.size(); ++i) {
        if (i == bytes.size() || bytes[i] == '\0') {
            fields.push_back(bytes.substr(start, i - start));
            start = i + 1;
        }
    }
    const shared_decoding d = decode_shared_session(fields);
    if (d.result == shared_decoding::verdict::valid) {
        FUZZ_CHECK(d.session.created_ms <= d.session.last_access_ms);
        FUZZ_CHECK(d.session.backend_id.size() <= max_shared_backend_id);
        FUZZ_CHECK(d.session.pinned_server.size() <= max_upstream_name);
        FUZZ_CHECK(d.session.bound <= 3);
        const auto again = encode_shared_session(d.session);
        std::vector<std::string_view> flat;
        for (const auto& [n, v] : again) {
            flat.push_back(n);
            flat.push_back(v);
        }
        const shared_decoding e = decode_shared_session(flat);
        FUZZ_CHECK(e.result == shared_decoding::verdict::valid);
        FUZZ_CHECK(e.session.created_ms == d.session.created_ms && e.session.backend_id == d.session.backend_id &&
                   e.session.pinned_server == d.session.pinned_server && e.session.principal == d.session.principal);
    }
    FUZZ_CHECK((d.result == shared_decoding::verdict::malformed) == !d.problem.empty());
    return 0;
}
