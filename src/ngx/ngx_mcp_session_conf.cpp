// Directives: mcp_session_zone (http) and mcp_session (http/server/location).
#include "ngx_mcp_session_conf.hpp"
#include "ngx_mcp_session_sticky.hpp"

#include "ngx_mcp_session_phases.hpp"
#include "ngx_mcp_session_policy.hpp"
#include "ngx_mcp_session_redis_link.hpp"

#include "mcp_session/protocol.hpp"
#include "mcp_session/shared_record.hpp"
#include "mcp_session/sse_wire.hpp"
#include "mcp_session/traffic.hpp"

#include <exception>
#include "ngx_mcp_session_zone.hpp"

#include <new>

namespace mcp_ngx {
namespace {

// A ring slot is 24 bytes: 65536 events is 1.5 MB per streaming session.
constexpr ngx_int_t max_ring_capacity = 65536;

// How often a worker saves a zone with state= (besides the save at exit).
constexpr mcp_session::unix_ms default_state_interval_ms = 60 * 1000;

bool take_parameter(const ngx_str_t& arg, const char* prefix, ngx_str_t* value)
{
    const size_t len = ngx_strlen(prefix);
    if (arg.len < len || ngx_strncmp(arg.data, prefix, len) != 0) {
        return false;
    }
    value->data = arg.data + len;
    value->len = arg.len - len;
    return true;
}

// nginx's own time syntax ("500ms", "30m", "4h"); zero is refused because
// a zero timeout would expire every session at birth.
bool parse_positive_ms(ngx_str_t value, mcp_session::unix_ms* out)
{
    const ngx_int_t ms = ngx_parse_time(&value, 0);
    if (ms == NGX_ERROR || ms <= 0) {
        return false;
    }
    *out = static_cast<mcp_session::unix_ms>(ms);
    return true;
}

// "zone=NAME:SIZE" as limit_req_zone spells it.
char* parse_zone_parameter(ngx_conf_t* cf, const ngx_str_t& arg, ngx_str_t value, ngx_str_t* name,
                           ssize_t* size)
{
    u_char* colon = static_cast<u_char*>(ngx_strlchr(value.data, value.data + value.len, ':'));
    if (colon == nullptr || colon == value.data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid zone size \"%V\"", &arg);
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    name->data = value.data;
    name->len = static_cast<size_t>(colon - value.data);

    ngx_str_t size_text;
    size_text.data = colon + 1;
    size_text.len = static_cast<size_t>(value.data + value.len - size_text.data);
    *size = ngx_parse_size(&size_text);
    if (*size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid zone size \"%V\"", &arg);
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    if (*size < static_cast<ssize_t>(8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "zone \"%V\" is too small", &arg);
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    return NGX_CONF_OK;
}

char* timing_error(ngx_conf_t* cf, const char* what, const ngx_str_t& arg)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid %s \"%V\"", what, &arg);
    return static_cast<char*>(NGX_CONF_ERROR);
}

// The redis* parameters of mcp_session_zone, collected before the zone
// is made (any order); checked together once the line is read.
struct redis_parameters {
    ngx_str_t address = ngx_null_string;  // redis=
    bool address_set = false;
    ngx_str_t password = ngx_null_string;
    bool password_set = false;
    ngx_int_t database = 0;
    bool database_set = false;
    ngx_str_t prefix = ngx_string("mcp:");
    bool prefix_set = false;
    ngx_msec_t timeout = 1000;
    bool timeout_set = false;
};

constexpr ngx_int_t max_redis_database = 1 << 20;

// true: `arg` was one of the redis parameters (parsed, or an error logged
// and *error set).
bool take_redis_parameter(ngx_conf_t* cf, const ngx_str_t& arg, redis_parameters& p, bool* error)
{
    ngx_str_t value;
    if (take_parameter(arg, "redis=", &value)) {
        p.address = value;
        p.address_set = true;
    } else if (take_parameter(arg, "redis_password=", &value)) {
        p.password = value;
        p.password_set = true;
    } else if (take_parameter(arg, "redis_database=", &value)) {
        p.database = ngx_atoi(value.data, value.len);
        p.database_set = true;
        if (p.database == NGX_ERROR || p.database > max_redis_database) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid redis_database \"%V\", expected 0 to %i", &arg,
                               max_redis_database);
            *error = true;
        }
    } else if (take_parameter(arg, "redis_prefix=", &value)) {
        p.prefix = value;
        p.prefix_set = true;
        if (!mcp_session::is_valid_shared_prefix(to_view(value))) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid redis_prefix \"%V\", expected up to %uz printable characters without "
                               "spaces, quotes, backslashes or braces",
                               &arg, mcp_session::max_shared_prefix);
            *error = true;
        }
    } else if (take_parameter(arg, "redis_timeout=", &value)) {
        mcp_session::unix_ms ms = 0;
        p.timeout_set = true;
        if (!parse_positive_ms(value, &ms)) {
            timing_error(cf, "redis_timeout", arg);
            *error = true;
        }
        p.timeout = static_cast<ngx_msec_t>(ms);
    } else {
        return false;
    }
    return true;
}

void destroy_redis_settings(void* data) noexcept { static_cast<redis_settings*>(data)->~redis_settings(); }

// redis=HOST:PORT or redis=unix:/path. A host name is resolved here, by
// the master: hiredis would resolve it in the worker, blocking.
char* make_redis_settings(ngx_conf_t* cf, const redis_parameters& p, zone_conf& parsed)
{
    if (!p.address_set) {
        const char* orphan = p.password_set   ? "redis_password"
                             : p.database_set ? "redis_database"
                             : p.prefix_set   ? "redis_prefix"
                             : p.timeout_set  ? "redis_timeout"
                                              : nullptr;
        if (orphan != nullptr) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%s\" requires the \"redis\" parameter", orphan);
            return static_cast<char*>(NGX_CONF_ERROR);
        }
        return NGX_CONF_OK;
    }
    ngx_pool_cleanup_t* cleanup = ngx_pool_cleanup_add(cf->pool, 0);
    void* memory = ngx_palloc(cf->pool, sizeof(redis_settings));
    if (cleanup == nullptr || memory == nullptr) {
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    auto* settings = new (memory) redis_settings{};
    cleanup->handler = destroy_redis_settings;
    cleanup->data = settings;
    settings->password.assign(to_view(p.password));
    settings->database = static_cast<int>(p.database);
    settings->prefix.assign(to_view(p.prefix));
    settings->timeout = p.timeout;

    const std::string_view address = to_view(p.address);
    if (address.substr(0, 5) == "unix:") {
        if (address.size() == 5) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid redis address \"%V\": no socket path", &p.address);
            return static_cast<char*>(NGX_CONF_ERROR);
        }
        settings->unix_path.assign(address.substr(5));
        parsed.redis = settings;
        return NGX_CONF_OK;
    }
    ngx_url_t u{};
    u.url = p.address;
    u.default_port = 6379;
    if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0 || u.no_port) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid redis address \"%V\"%s%s, expected HOST:PORT or unix:/path",
                           &p.address, u.err ? ": " : "", u.err ? u.err : "");
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    u_char text[NGX_SOCKADDR_STRLEN];
    const size_t len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, text, sizeof(text), 0);
    settings->host.assign(reinterpret_cast<const char*>(text), len);
    settings->port = static_cast<int>(u.port);
    parsed.redis = settings;
    return NGX_CONF_OK;
}

char* add_zone(ngx_conf_t* cf, main_conf* mcf, ngx_str_t name, ssize_t size, const zone_conf& parsed)
{
    ngx_shm_zone_t* shm_zone = ngx_shared_memory_add(cf, &name, static_cast<size_t>(size), &ngx_mcp_session_module);
    if (shm_zone == nullptr) {
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    if (shm_zone->data != nullptr) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "duplicate zone \"%V\"", &name);
        return static_cast<char*>(NGX_CONF_ERROR);
    }

    void* memory = ngx_pcalloc(cf->pool, sizeof(zone_conf));
    auto** slot = static_cast<zone_conf**>(ngx_array_push(&mcf->zones));
    if (memory == nullptr || slot == nullptr) {
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    auto* zone = new (memory) zone_conf(parsed);
    zone->shm_zone = shm_zone;
    zone->conf_cycle = cf->cycle;
    zone->name = shm_zone->shm.name;
    shm_zone->init = init_zone;
    shm_zone->data = zone;
    *slot = zone;
    return NGX_CONF_OK;
}

// "zone=NAME" naming a zone that may be declared later (like limit_req):
// size 0 reserves the name and check_zone_references reports it if it
// never is.
ngx_shm_zone_t* reference_zone(ngx_conf_t* cf, const ngx_str_t& arg, const char* expected)
{
    ngx_str_t name;
    if (!take_parameter(arg, "zone=", &name) || name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\", expected %s", &arg, expected);
        return nullptr;
    }
    ngx_shm_zone_t* shm_zone = ngx_shared_memory_add(cf, &name, 0, &ngx_mcp_session_module);
    auto* mcf = static_cast<main_conf*>(ngx_http_conf_get_module_main_conf(cf, ngx_mcp_session_module));
    auto* ref = static_cast<zone_reference*>(ngx_array_push(&mcf->references));
    if (shm_zone == nullptr || ref == nullptr) {
        return nullptr;
    }
    ref->shm_zone = shm_zone;
    ref->name = name;
    ref->file = cf->conf_file->file.name;
    ref->line = cf->conf_file->line;
    return shm_zone;
}

}  // namespace

char* set_zone_directive(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept
{
    auto* mcf = static_cast<main_conf*>(conf);
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);

    ngx_str_t name = ngx_null_string;
    ssize_t size = 0;
    zone_conf parsed{};
    parsed.ring_capacity = mcp_session::default_ring_capacity;
    parsed.state_saves.interval_ms = default_state_interval_ms;
    redis_parameters redis;

    for (ngx_uint_t i = 1; i < cf->args->nelts; ++i) {
        const ngx_str_t& arg = args[i];
        ngx_str_t value;
        bool redis_error = false;
        if (take_redis_parameter(cf, arg, redis, &redis_error)) {
            if (redis_error) {
                return static_cast<char*>(NGX_CONF_ERROR);
            }
        } else if (take_parameter(arg, "zone=", &value)) {
            if (parse_zone_parameter(cf, arg, value, &name, &size) != NGX_CONF_OK) {
                return static_cast<char*>(NGX_CONF_ERROR);
            }
        } else if (take_parameter(arg, "idle_timeout=", &value)) {
            if (!parse_positive_ms(value, &parsed.policy.idle_timeout_ms)) {
                return timing_error(cf, "idle_timeout", arg);
            }
        } else if (take_parameter(arg, "max_lifetime=", &value)) {
            if (!parse_positive_ms(value, &parsed.policy.max_lifetime_ms)) {
                return timing_error(cf, "max_lifetime", arg);
            }
        } else if (take_parameter(arg, "sweep_interval=", &value)) {
            if (!parse_positive_ms(value, &parsed.sweep.interval_ms)) {
                return timing_error(cf, "sweep_interval", arg);
            }
        } else if (take_parameter(arg, "state=", &value)) {
            if (value.len == 0 || ngx_conf_full_name(cf->cycle, &value, 0) != NGX_OK) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid state file \"%V\"", &arg);
                return static_cast<char*>(NGX_CONF_ERROR);
            }
            parsed.state_path.data = static_cast<u_char*>(ngx_pnalloc(cf->pool, value.len + 1));
            if (parsed.state_path.data == nullptr) {
                return static_cast<char*>(NGX_CONF_ERROR);
            }
            *ngx_cpymem(parsed.state_path.data, value.data, value.len) = '\0';
            parsed.state_path.len = value.len;
        } else if (take_parameter(arg, "state_interval=", &value)) {
            if (!parse_positive_ms(value, &parsed.state_saves.interval_ms)) {
                return timing_error(cf, "state_interval", arg);
            }
        } else if (take_parameter(arg, "buffer=", &value)) {
            const ngx_int_t events = ngx_atoi(value.data, value.len);
            if (events < 1 || events > max_ring_capacity) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid buffer \"%V\", expected 1 to %i events", &arg,
                                   max_ring_capacity);
                return static_cast<char*>(NGX_CONF_ERROR);
            }
            parsed.ring_capacity = static_cast<std::uint32_t>(events);
        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"", &arg);
            return static_cast<char*>(NGX_CONF_ERROR);
        }
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%V\" must have \"zone\" parameter", &args[0]);
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    if (make_redis_settings(cf, redis, parsed) != NGX_CONF_OK) {
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    // Two zones saving to one file would overwrite each other's sessions.
    if (parsed.state_path.len > 0) {
        zone_conf* const* zones = static_cast<zone_conf**>(mcf->zones.elts);
        for (ngx_uint_t i = 0; i < mcf->zones.nelts; ++i) {
            const ngx_str_t& other = zones[i]->state_path;
            if (other.len == parsed.state_path.len && ngx_strncmp(other.data, parsed.state_path.data, other.len) == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "state file \"%V\" is already used by mcp_session zone \"%V\"",
                                   &parsed.state_path, &zones[i]->name);
                return static_cast<char*>(NGX_CONF_ERROR);
            }
        }
    }
    return add_zone(cf, mcf, name, size, parsed);
}

char* set_session_directive(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept
{
    auto* lcf = static_cast<loc_conf*>(conf);
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);

    if (lcf->zone != NGX_CONF_UNSET_PTR) {
        return const_cast<char*>("is duplicate");
    }
    if (args[1].len == 3 && ngx_strncmp(args[1].data, "off", 3) == 0) {
        lcf->zone = nullptr;
        return NGX_CONF_OK;
    }

    lcf->zone = reference_zone(cf, args[1], "\"zone=NAME\" or \"off\"");
    return lcf->zone == nullptr ? static_cast<char*>(NGX_CONF_ERROR) : NGX_CONF_OK;
}

// A content handler bound to a zone: mcp_session_publish, mcp_session_status.
char* set_endpoint(ngx_conf_t* cf, ngx_shm_zone_t** slot, ngx_http_handler_pt handler)
{
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    if (*slot != nullptr) {
        return const_cast<char*>("is duplicate");
    }
    *slot = reference_zone(cf, args[1], "\"zone=NAME\"");
    if (*slot == nullptr) {
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    clcf->handler = handler;
    return NGX_CONF_OK;
}

char* set_publish_directive(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept
{
    return set_endpoint(cf, &static_cast<loc_conf*>(conf)->publish_zone, publish_handler);
}

char* set_status_directive(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept
{
    return set_endpoint(cf, &static_cast<loc_conf*>(conf)->status_zone, status_handler);
}

ngx_conf_enum_t session_modes[] = {
    {ngx_string("learn"), mode_learn},
    {ngx_string("issue"), mode_issue},
    {ngx_null_string, 0},
};

ngx_conf_enum_t stream_vocabularies[] = {
    {ngx_string("compatible"), static_cast<ngx_uint_t>(mcp_session::stream_vocabulary::compatible)},
    {ngx_string("seed"), static_cast<ngx_uint_t>(mcp_session::stream_vocabulary::seed)},
    {ngx_null_string, 0},
};

char* set_origins_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept
{
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    for (ngx_uint_t i = 1; i < cf->args->nelts; ++i) {
        const bool any = args[i].len == 3 && ngx_strncasecmp(args[i].data, (u_char*)"any", 3) == 0;
        if (any && cf->args->nelts > 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"any\" cannot be combined with origins");
            return static_cast<char*>(NGX_CONF_ERROR);
        }
        if (!any && !mcp_session::origin_host(to_view(args[i]))) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid origin \"%V\", expected scheme://host[:port] or any",
                               &args[i]);
            return static_cast<char*>(NGX_CONF_ERROR);
        }
    }
    return ngx_conf_set_str_array_slot(cf, cmd, conf);
}

char* set_versions_directive(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept
{
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    for (ngx_uint_t i = 1; i < cf->args->nelts; ++i) {
        const mcp_session::protocol_verdict v = mcp_session::classify_protocol_version(to_view(args[i]));
        if (v.era != mcp_session::protocol_era::session) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" is not a session-era MCP revision (2024-11-05 up to, not including, 2026-07-28)",
                               &args[i]);
            return static_cast<char*>(NGX_CONF_ERROR);
        }
    }
    return ngx_conf_set_str_array_slot(cf, cmd, conf);
}

// mcp_session_tracked_tools zone=NAME TOOL...: the zone's tool labels,
// exactly these. The zone may be declared later (check_zone_references).
char* set_tracked_tools_directive(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept
{
    auto* mcf = static_cast<main_conf*>(conf);
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    ngx_shm_zone_t* shm_zone = reference_zone(cf, args[1], "\"zone=NAME\"");
    if (shm_zone == nullptr) {
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    auto* lists = static_cast<tracked_tools_conf*>(mcf->tracked_tools.elts);
    for (ngx_uint_t i = 0; i < mcf->tracked_tools.nelts; ++i) {
        if (lists[i].shm_zone == shm_zone) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "tracked tools of mcp_session zone \"%V\" are already set",
                               &shm_zone->shm.name);
            return static_cast<char*>(NGX_CONF_ERROR);
        }
    }
    const ngx_uint_t count = cf->args->nelts - 2;
    if (count > mcp_session::max_tracked_tools) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "too many tracked tools (%ui), at most %uz", count,
                           mcp_session::max_tracked_tools);
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    ngx_array_t* names = ngx_array_create(cf->pool, count, sizeof(ngx_str_t));
    auto* list = static_cast<tracked_tools_conf*>(ngx_array_push(&mcf->tracked_tools));
    if (names == nullptr || list == nullptr) {
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    for (ngx_uint_t i = 2; i < cf->args->nelts; ++i) {
        const std::string_view name = to_view(args[i]);
        if (!mcp_session::is_trackable_tool_name(name)) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid tool name \"%V\", expected 1 to %uz printable ASCII bytes",
                               &args[i], mcp_session::max_tool_name);
            return static_cast<char*>(NGX_CONF_ERROR);
        }
        for (ngx_uint_t j = 2; j < i; ++j) {
            if (to_view(args[j]) == name) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "duplicate tool name \"%V\"", &args[i]);
                return static_cast<char*>(NGX_CONF_ERROR);
            }
        }
        *static_cast<ngx_str_t*>(ngx_array_push(names)) = args[i];  // room for count was made
    }
    list->shm_zone = shm_zone;
    list->names = names;
    return NGX_CONF_OK;
}

// mcp_session_lost_session_400 default | off | [default] "phrase" ...
char* set_lost_session_400_directive(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept
{
    auto* lcf = static_cast<loc_conf*>(conf);
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    if (lcf->lost_session_400_set != NGX_CONF_UNSET) {
        return const_cast<char*>("is duplicate");
    }
    const auto is_word = [&](ngx_uint_t i, std::string_view word) { return to_view(args[i]) == word; };
    mcp_session::lost_session_rules rules;
    rules.default_rule = false;
    for (ngx_uint_t i = 1; i < cf->args->nelts; ++i) {
        if (is_word(i, "off")) {
            if (cf->args->nelts > 2) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"off\" cannot be combined with other values");
                return static_cast<char*>(NGX_CONF_ERROR);
            }
            continue;
        }
        if (is_word(i, "default")) {
            if (i != 1) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"default\" must be the first value");
                return static_cast<char*>(NGX_CONF_ERROR);
            }
            rules.default_rule = true;
            continue;
        }
        if (args[i].len == 0 || args[i].len > mcp_session::max_lost_session_phrase_length) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid phrase \"%V\", expected 1 to %uz bytes", &args[i],
                               mcp_session::max_lost_session_phrase_length);
            return static_cast<char*>(NGX_CONF_ERROR);
        }
        if (rules.phrase_count == mcp_session::max_lost_session_phrases) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "too many phrases, at most %uz",
                               mcp_session::max_lost_session_phrases);
            return static_cast<char*>(NGX_CONF_ERROR);
        }
        rules.phrases[rules.phrase_count++] = to_view(args[i]);  // cf->pool memory: lives as long as the conf
    }
    lcf->lost_session_400 = rules;
    lcf->lost_session_400_set = 1;
    return NGX_CONF_OK;
}

char* set_heartbeat_directive(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept
{
    auto* lcf = static_cast<loc_conf*>(conf);
    auto* args = static_cast<ngx_str_t*>(cf->args->elts);
    if (lcf->heartbeat != NGX_CONF_UNSET_MSEC) {
        return const_cast<char*>("is duplicate");
    }
    if (args[1].len == 3 && ngx_strncmp(args[1].data, "off", 3) == 0) {
        lcf->heartbeat = 0;
        return NGX_CONF_OK;
    }
    mcp_session::unix_ms ms = 0;
    if (!parse_positive_ms(args[1], &ms)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid heartbeat interval \"%V\"", &args[1]);
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    lcf->heartbeat = static_cast<ngx_msec_t>(ms);
    return NGX_CONF_OK;
}

void* create_main_conf(ngx_conf_t* cf) noexcept
{
    auto* mcf = static_cast<main_conf*>(ngx_pcalloc(cf->pool, sizeof(main_conf)));
    if (mcf == nullptr) {
        return nullptr;
    }
    if (ngx_array_init(&mcf->zones, cf->pool, 2, sizeof(zone_conf*)) != NGX_OK ||
        ngx_array_init(&mcf->references, cf->pool, 4, sizeof(zone_reference)) != NGX_OK ||
        ngx_array_init(&mcf->tracked_tools, cf->pool, 1, sizeof(tracked_tools_conf)) != NGX_OK ||
        ngx_array_init(&mcf->heal_variables, cf->pool, 6, sizeof(ngx_int_t)) != NGX_OK) {
        return nullptr;
    }
    return mcf;
}

void* create_loc_conf(ngx_conf_t* cf) noexcept
{
    auto* lcf = static_cast<loc_conf*>(ngx_pcalloc(cf->pool, sizeof(loc_conf)));
    if (lcf == nullptr) {
        return nullptr;
    }
    lcf->zone = static_cast<ngx_shm_zone_t*>(NGX_CONF_UNSET_PTR);
    lcf->publish_zone = nullptr;
    lcf->stream = NGX_CONF_UNSET;
    lcf->heartbeat = NGX_CONF_UNSET_MSEC;
    lcf->stream_events = NGX_CONF_UNSET_UINT;
    lcf->event_max_size = NGX_CONF_UNSET_SIZE;
    lcf->stream_grace = NGX_CONF_UNSET_MSEC;
    lcf->mode = NGX_CONF_UNSET_UINT;
    lcf->allowed_origins = static_cast<ngx_array_t*>(NGX_CONF_UNSET_PTR);
    lcf->protocol_versions = static_cast<ngx_array_t*>(NGX_CONF_UNSET_PTR);
    lcf->distinct_binding_errors = NGX_CONF_UNSET;
    lcf->inspect_body = NGX_CONF_UNSET;
    lcf->cors = NGX_CONF_UNSET;
    lcf->lost_session_400_set = NGX_CONF_UNSET;
    lcf->heal = NGX_CONF_UNSET;
    return lcf;
}

namespace {

// Stream settings that could never work, caught by nginx -t. Only real
// locations are checked for a missing zone: a server-level
// `mcp_session_stream on` may serve locations that each name their zone.
char* check_stream_settings(ngx_conf_t* cf, const loc_conf* conf, bool stream_set_here)
{
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    const bool location = clcf != nullptr && clcf->name.len > 0;
    if (stream_set_here && conf->stream && conf->zone == nullptr && location && conf->publish_zone == nullptr &&
        conf->status_zone == nullptr) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"mcp_session_stream\" is on in location \"%V\", which has no mcp_session zone",
                           &clcf->name);
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    const zone_conf* zone = zone_of(conf);
    // A heartbeat is what keeps a quiet stream's session from idling out.
    if (zone != nullptr && conf->stream && conf->heartbeat > 0 &&
        static_cast<mcp_session::unix_ms>(conf->heartbeat) >= zone->policy.idle_timeout_ms) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "mcp_session_heartbeat %Mms is not shorter than idle_timeout of mcp_session zone \"%V\"",
                           conf->heartbeat, &zone->name);
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    return nullptr;
}

// Inherited like any list directive; set in a location that has no
// mcp_session zone it could never apply, which nginx -t reports.
char* merge_lost_session_400(ngx_conf_t* cf, const loc_conf* prev, loc_conf* conf)
{
    if (conf->lost_session_400_set != NGX_CONF_UNSET) {
        auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
        if (clcf != nullptr && clcf->name.len > 0 && conf->zone == nullptr) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"mcp_session_lost_session_400\" is set in location \"%V\", which has no mcp_session zone",
                               &clcf->name);
            return static_cast<char*>(NGX_CONF_ERROR);
        }
        return nullptr;
    }
    conf->lost_session_400 = prev->lost_session_400_set != NGX_CONF_UNSET ? prev->lost_session_400
                                                                           : mcp_session::lost_session_rules{};
    conf->lost_session_400_set = 1;
    return nullptr;
}

// Healing replays what nginx kept of a session it issued: a location
// that learns ids (the client holds the backend's own) has nothing to
// map a new backend session to.
char* check_heal(ngx_conf_t* cf, const loc_conf* conf, bool heal_set_here)
{
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    if (!heal_set_here || !conf->heal || clcf == nullptr || clcf->name.len == 0) {
        return nullptr;
    }
    if (conf->zone == nullptr) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"mcp_session_heal\" is on in location \"%V\", which has no mcp_session zone",
                           &clcf->name);
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    if (conf->mode != mode_issue) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mcp_session_heal\" needs \"mcp_session_mode issue\" in location \"%V\" "
                           "(in learn mode the client holds the backend's own id)",
                           &clcf->name);
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    return nullptr;
}

}  // namespace

char* merge_loc_conf(ngx_conf_t* cf, void* parent, void* child) noexcept
{
    auto* prev = static_cast<loc_conf*>(parent);
    auto* conf = static_cast<loc_conf*>(child);
    const bool endpoint = conf->publish_zone != nullptr || conf->status_zone != nullptr;
    if (endpoint && conf->zone != NGX_CONF_UNSET_PTR && conf->zone != nullptr) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mcp_session\" cannot be used in a location with mcp_session_publish or mcp_session_status");
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    if (conf->zone == NGX_CONF_UNSET_PTR) {
        conf->zone = (prev->zone == NGX_CONF_UNSET_PTR) ? nullptr : prev->zone;
    }
    if (endpoint) {
        conf->zone = nullptr;  // not a client path: no session rules, even inherited ones
    }
    ngx_conf_merge_value(conf->distinct_binding_errors, prev->distinct_binding_errors, 0);
    ngx_conf_merge_value(conf->inspect_body, prev->inspect_body, 0);
    ngx_conf_merge_value(conf->cors, prev->cors, 1);
    const bool stream_set_here = conf->stream != NGX_CONF_UNSET;
    ngx_conf_merge_value(conf->stream, prev->stream, 0);
    ngx_conf_merge_msec_value(conf->heartbeat, prev->heartbeat, 15000);
    ngx_conf_merge_uint_value(conf->stream_events, prev->stream_events,
                              static_cast<ngx_uint_t>(mcp_session::stream_vocabulary::compatible));
    ngx_conf_merge_size_value(conf->event_max_size, prev->event_max_size, mcp_session::default_event_max_size);
    ngx_conf_merge_msec_value(conf->stream_grace, prev->stream_grace, 30000);
    if (conf->stream_grace < 1000) {
        // The grace covers a client's reconnect: shorter than a second
        // would end the backend's stream under a client that is merely
        // reconnecting (clients wait about a second before they do).
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "mcp_session_stream_grace %Mms is shorter than 1s", conf->stream_grace);
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    ngx_conf_merge_uint_value(conf->mode, prev->mode, mode_learn);
    if (conf->allowed_origins == NGX_CONF_UNSET_PTR) {
        conf->allowed_origins = prev->allowed_origins == NGX_CONF_UNSET_PTR ? nullptr : prev->allowed_origins;
    }
    if (conf->protocol_versions == NGX_CONF_UNSET_PTR) {
        conf->protocol_versions = prev->protocol_versions == NGX_CONF_UNSET_PTR ? nullptr : prev->protocol_versions;
    }
    if (conf->principal == nullptr) {
        conf->principal = prev->principal;
    }
    if (conf->tenant == nullptr) {
        conf->tenant = prev->tenant;
    }
    if (char* error = check_stream_settings(cf, conf, stream_set_here)) {
        return error;
    }
    if (char* error = check_sticky_location(cf, conf->zone != nullptr)) {
        return error;
    }
    if (char* error = merge_lost_session_400(cf, prev, conf)) {
        return error;
    }
    const bool heal_set_here = conf->heal != NGX_CONF_UNSET;
    ngx_conf_merge_value(conf->heal, prev->heal, 0);
    if (char* error = check_heal(cf, conf, heal_set_here)) {
        return error;
    }
    if (conf->zone != nullptr) {
        try {
            conf->policy = build_location_policy(cf, conf);
        } catch (const std::exception& e) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "mcp_session: %s", e.what());
            return static_cast<char*>(NGX_CONF_ERROR);
        }
        if (conf->policy == nullptr) {
            return static_cast<char*>(NGX_CONF_ERROR);
        }
    }
    return NGX_CONF_OK;
}

ngx_int_t check_zone_references(ngx_conf_t* cf) noexcept
{
    auto* mcf = static_cast<main_conf*>(ngx_http_conf_get_module_main_conf(cf, ngx_mcp_session_module));
    auto* refs = static_cast<zone_reference*>(mcf->references.elts);
    for (ngx_uint_t i = 0; i < mcf->references.nelts; ++i) {
        if (refs[i].shm_zone->data == nullptr) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "unknown mcp_session zone \"%V\" (declare it with mcp_session_zone) in %V:%ui",
                          &refs[i].name, &refs[i].file, refs[i].line);
            return NGX_ERROR;
        }
    }
    // Every zone is declared: hand each its tracked tools.
    auto* lists = static_cast<tracked_tools_conf*>(mcf->tracked_tools.elts);
    for (ngx_uint_t i = 0; i < mcf->tracked_tools.nelts; ++i) {
        static_cast<zone_conf*>(lists[i].shm_zone->data)->tracked_tools = lists[i].names;
    }
    return NGX_OK;
}

}  // namespace mcp_ngx
