// A session as several nginx nodes share it through Redis: the key names
// it lives under and the hash fields of its record. Everything read back
// is checked as strictly as a state file: Redis is shared with other
// programs, and a truncated or foreign value must never become a session.
#pragma once

#include "mcp_session/expiry.hpp"
#include "mcp_session/session_key.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mcp_session {

// The longest key prefix (redis_prefix=), so every key stays short.
inline constexpr std::size_t max_shared_prefix = 64;

// True when `prefix` may name a cluster's keys: printable ASCII without
// space, braces (they would move the Redis Cluster hash tag) or quotes.
bool is_valid_shared_prefix(std::string_view prefix);

// A session's name in Redis: its id form as one digit, then the hex of
// its stored bytes. Every id shape (even a digest of a long one) has one,
// and it holds no byte a key or a channel message could trip on.
std::string shared_token(const session_key& key);
// The key a token names, or nullopt for anything shared_token cannot make.
std::optional<session_key> key_from_shared_token(std::string_view token);

// "<prefix>s:{<token>}": braces make the token the Redis Cluster hash
// tag, so every key of one session lives on one shard.
std::string shared_session_key(std::string_view prefix, const session_key& key);
// Where an ended session is remembered until its lifetime is over, so a
// node that still holds it in a late save cannot bring it back.
std::string shared_tombstone_key(std::string_view prefix, const session_key& key);
// Issue mode: the session a backend knows by `backend_id` (its value is
// the session's token), so a backend can publish through any node by the
// id it knows. Outside the session's hash tag: one key per backend id.
std::string shared_backend_index_key(std::string_view prefix, std::string_view backend_id);
// The channel on which ends are announced (the message is the token).
std::string shared_end_channel(std::string_view prefix);
// The cluster's binding key (see shared_binding_key_text).
std::string shared_binding_key_name(std::string_view prefix);
// Set for a while by the node that found Redis empty: the nodes are
// re-seeding it, so "not there" may only mean "not sent yet".
std::string shared_reseeding_key_name(std::string_view prefix);

// What a node knows of a session that another node may need.
struct shared_session {
    unix_ms created_ms = 0;
    unix_ms last_access_ms = 0;
    std::uint8_t bound = 0;        // bit 0: principal, bit 1: tenant
    std::uint64_t principal = 0;   // digests under the cluster's binding key
    std::uint64_t tenant = 0;
    std::string backend_id;        // issue mode: the backend's own id
    std::string pinned_server;     // mcp_session_sticky
};

inline constexpr std::size_t max_shared_backend_id = max_verbatim_id_length;

// Field/value pairs for HSET, in a fixed order.
std::vector<std::pair<std::string, std::string>> encode_shared_session(const shared_session& session);

struct shared_decoding {
    enum class verdict { absent, valid, malformed } result = verdict::absent;
    shared_session session;
    std::string problem;  // for the log line when malformed (no untrusted bytes in it)
};

// An HGETALL reply as its flat field, value, field, value... list. An
// empty list is an absent session; unknown fields are skipped (a newer
// node may add some); a missing, repeated or out-of-range field makes the
// whole record malformed.
shared_decoding decode_shared_session(const std::vector<std::string_view>& fields);

// The cluster binding key travels as 16 lowercase hex digits.
std::string shared_binding_key_text(std::uint64_t key);
std::optional<std::uint64_t> parse_shared_binding_key(std::string_view text);

}  // namespace mcp_session
