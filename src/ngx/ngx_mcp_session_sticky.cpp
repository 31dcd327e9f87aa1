#include "ngx_mcp_session_sticky.hpp"

#include "ngx_mcp_session_conf.hpp"
#include "ngx_mcp_session_request.hpp"

extern "C" {
#include <ngx_http_upstream_round_robin.h>
}

// The proxy module, to see which upstream a location proxies to. Weak, so
// an nginx built without it still loads the module (nothing to check then).
extern "C" ngx_module_t ngx_http_proxy_module __attribute__((weak));

namespace mcp_ngx {
namespace {

upstream_conf* conf_of(ngx_http_upstream_srv_conf_t* uscf)
{
    if (uscf == nullptr || uscf->srv_conf == nullptr) {
        return nullptr;  // an implicit upstream (proxy_pass http://host:port)
    }
    return static_cast<upstream_conf*>(ngx_http_conf_upstream_srv_conf(uscf, ngx_mcp_session_module));
}

// One request's balancer: round robin's, with the pinned server chosen
// directly when the session has one.
struct sticky_peer {
    ngx_http_request_t* r;
    ngx_http_upstream_rr_peer_data_t* rr;
    ngx_event_get_peer_pt rr_get;
    ngx_event_free_peer_pt rr_free;
    request_state* state;  // null: the request names no session here
    ngx_str_t pinned;      // empty: balanced by round robin
};

bool same_name(const ngx_str_t& a, const ngx_str_t& b)
{
    return a.len == b.len && ngx_memcmp(a.data, b.data, a.len) == 0;
}

enum class pick { found, gone, busy };

// Whether the pinned peer can take the request. Only `down` says it is
// gone: round robin's failure marks (max_fails within fail_timeout) are
// for choosing among servers, and a pinned session has no other choice,
// so it tries its server anyway: one client's timeout must not end every
// session on a live server. A dead server refuses the connection, which
// free_peer notes. At max_conns it is busy: 502, the session kept.
pick take_peer(ngx_http_upstream_rr_peers_t* peers, ngx_http_upstream_rr_peer_t* peer)
{
    ngx_http_upstream_rr_peer_lock(peers, peer);
    pick outcome = pick::found;
    if (peer->down) {
        outcome = pick::gone;
    } else if (peer->max_conns != 0 && peer->conns >= peer->max_conns) {
        outcome = pick::busy;
    } else {
        const time_t now = ngx_time();
        if (now - peer->checked > peer->fail_timeout) {
            peer->checked = now;  // as round robin does when it picks a server
        }
        peer->conns++;
    }
    ngx_http_upstream_rr_peer_unlock(peers, peer);
    return outcome;
}

// The pinned server among the primary, then the backup servers, matched
// by address: a reload that reorders or adds servers keeps the pin.
ngx_int_t get_pinned_peer(ngx_peer_connection_t* pc, sticky_peer* sp)
{
    ngx_http_upstream_rr_peer_data_t* rr = sp->rr;
    pc->cached = 0;
    pc->connection = nullptr;
    ngx_http_upstream_rr_peers_t* primary = rr->peers;
    pick outcome = pick::gone;
    for (ngx_http_upstream_rr_peers_t* peers = primary; peers != nullptr && outcome == pick::gone;
         peers = peers->next) {
        ngx_http_upstream_rr_peers_rlock(peers);
        for (ngx_http_upstream_rr_peer_t* peer = peers->peer; peer != nullptr; peer = peer->next) {
            if (!same_name(peer->name, sp->pinned)) {
                continue;
            }
            outcome = take_peer(peers, peer);
            if (outcome == pick::found) {
                rr->peers = peers;  // round robin's free locks and counts in the list it came from
                rr->current = peer;
                pc->sockaddr = peer->sockaddr;
                pc->socklen = peer->socklen;
                pc->name = &peer->name;
            }
            break;
        }
        ngx_http_upstream_rr_peers_unlock(peers);
    }
    // A retry that reaches the server again (nginx retries a cached
    // keepalive connection that failed) forgets the failure before it.
    sp->state->pinned_server_gone = outcome == pick::gone;
    if (outcome == pick::found) {
        return NGX_OK;
    }
    pc->name = primary->name;  // for "no live upstreams while connecting to upstream ..."
    return NGX_BUSY;
}

ngx_int_t get_peer(ngx_peer_connection_t* pc, void* data) noexcept
{
    auto* sp = static_cast<sticky_peer*>(data);
    if (sp->pinned.len == 0) {
        return sp->rr_get(pc, sp->rr);
    }
    return get_pinned_peer(pc, sp);
}

void free_peer(ngx_peer_connection_t* pc, void* data, ngx_uint_t peer_state) noexcept
{
    auto* sp = static_cast<sticky_peer*>(data);
    // Gone only when a new connection failed before any of the request was
    // sent (refused, reset or timed out while connecting): the backend
    // cannot have begun the call. A read or send timeout after that, or a
    // bad answer, is an error of this request and ends nothing; a cached
    // keepalive connection that failed is retried by nginx.
    if (sp->pinned.len != 0 && (peer_state & NGX_PEER_FAILED) != 0 && !pc->cached &&
        !sp->r->upstream->request_sent) {
        sp->state->pinned_server_gone = true;
    }
    sp->rr_free(pc, sp->rr, peer_state);
}

#if (NGX_HTTP_SSL)
ngx_int_t set_peer_session(ngx_peer_connection_t* pc, void* data) noexcept
{
    return ngx_http_upstream_set_round_robin_peer_session(pc, static_cast<sticky_peer*>(data)->rr);
}

void save_peer_session(ngx_peer_connection_t* pc, void* data) noexcept
{
    ngx_http_upstream_save_round_robin_peer_session(pc, static_cast<sticky_peer*>(data)->rr);
}
#endif

ngx_int_t init_peer(ngx_http_request_t* r, ngx_http_upstream_srv_conf_t* uscf) noexcept
{
    upstream_conf* ucf = conf_of(uscf);
    if (ucf->original_init_peer(r, uscf) != NGX_OK) {
        return NGX_ERROR;
    }
    auto* sp = static_cast<sticky_peer*>(ngx_pcalloc(r->pool, sizeof(sticky_peer)));
    if (sp == nullptr) {
        return NGX_ERROR;
    }
    ngx_peer_connection_t& peer = r->upstream->peer;
    sp->r = r;
    sp->rr = static_cast<ngx_http_upstream_rr_peer_data_t*>(peer.data);
    sp->rr_get = peer.get;
    sp->rr_free = peer.free;
    sp->state = state_of(r);
    if (sp->state != nullptr && sp->state->status == session_status::valid) {
        sp->pinned = sp->state->pinned_server;
    }
    if (sp->pinned.len != 0) {
        // proxy_next_upstream never moves a pinned session to another
        // server: that server does not know it.
        peer.tries = 1;
    }
    peer.data = sp;
    peer.get = get_peer;
    peer.free = free_peer;
#if (NGX_HTTP_SSL)
    peer.set_session = set_peer_session;
    peer.save_session = save_peer_session;
#endif
    return NGX_OK;
}

ngx_int_t init_upstream(ngx_conf_t* cf, ngx_http_upstream_srv_conf_t* uscf) noexcept
{
    upstream_conf* ucf = conf_of(uscf);
    ngx_http_upstream_init_pt init = ucf->original_init_upstream != nullptr ? ucf->original_init_upstream
                                                                            : ngx_http_upstream_init_round_robin;
    if (init(cf, uscf) != NGX_OK) {
        return NGX_ERROR;
    }
    ucf->original_init_peer = uscf->peer.init;
    uscf->peer.init = init_peer;
    ucf->initialized = true;
    return NGX_OK;
}

}  // namespace

void* create_srv_conf(ngx_conf_t* cf) noexcept
{
    return ngx_pcalloc(cf->pool, sizeof(upstream_conf));
}

char* set_sticky_directive(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept
{
    auto* ucf = static_cast<upstream_conf*>(conf);
    if (ucf->sticky) {
        return const_cast<char*>("is duplicate");
    }
    auto* uscf = static_cast<ngx_http_upstream_srv_conf_t*>(
        ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module));
    if (uscf->peer.init_upstream != nullptr) {
        // hash, ip_hash, least_conn and random choose servers themselves;
        // keepalive wraps whatever precedes it, so it must come after.
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mcp_session_sticky\" must precede \"keepalive\" in the upstream block and cannot be "
                           "combined with another load balancing method (hash, ip_hash, least_conn, random)");
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    ucf->sticky = true;
    ucf->upstream = uscf;
    ucf->original_init_upstream = nullptr;
    uscf->peer.init_upstream = init_upstream;
    return NGX_CONF_OK;
}

char* check_sticky_location(ngx_conf_t* cf, bool handles_sessions) noexcept
{
    if (handles_sessions || &ngx_http_proxy_module == nullptr) {
        return NGX_CONF_OK;
    }
    // ngx_http_proxy_loc_conf_t starts with its ngx_http_upstream_conf_t,
    // which starts with the upstream block proxy_pass names (null when
    // proxy_pass has variables or is not set here).
    // A nested location inherits the proxy settings but not proxy_pass
    // itself: only one with a content handler of its own proxies.
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    auto* proxy = static_cast<ngx_http_upstream_conf_t*>(ngx_http_conf_get_module_loc_conf(cf, ngx_http_proxy_module));
    upstream_conf* ucf = proxy != nullptr && clcf->handler != nullptr ? conf_of(proxy->upstream) : nullptr;
    if (ucf != nullptr && ucf->sticky) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "upstream \"%V\" has \"mcp_session_sticky\" but this location proxies to it without "
                           "\"mcp_session\": its requests name no session to pin",
                           &ucf->upstream->host);
        return static_cast<char*>(NGX_CONF_ERROR);
    }
    return NGX_CONF_OK;
}

ngx_int_t check_sticky_upstreams(ngx_conf_t* cf) noexcept
{
    auto* umcf = static_cast<ngx_http_upstream_main_conf_t*>(
        ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module));
    auto** upstreams = static_cast<ngx_http_upstream_srv_conf_t**>(umcf->upstreams.elts);
    for (ngx_uint_t i = 0; i < umcf->upstreams.nelts; ++i) {
        upstream_conf* ucf = conf_of(upstreams[i]);
        if (ucf != nullptr && ucf->sticky && !ucf->initialized) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "upstream \"%V\": \"mcp_session_sticky\" was replaced by a load balancing method given "
                          "after it (hash, ip_hash, least_conn, random) in %s:%ui",
                          &upstreams[i]->host, upstreams[i]->file_name, upstreams[i]->line);
            return NGX_ERROR;
        }
    }
    return NGX_OK;
}

std::string_view sticky_server_of(ngx_http_request_t* r)
{
    ngx_http_upstream_t* u = r->upstream;
    if (u == nullptr || u->peer.name == nullptr || u->peer.sockaddr == nullptr) {
        return {};
    }
    upstream_conf* ucf = conf_of(u->upstream);
    if (ucf == nullptr || !ucf->sticky) {
        return {};
    }
    return {reinterpret_cast<const char*>(u->peer.name->data), u->peer.name->len};
}

}  // namespace mcp_ngx
