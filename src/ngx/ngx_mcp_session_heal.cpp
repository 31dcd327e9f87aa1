// mcp_session_heal (see the header). The steps, each the request run
// again through its location once the previous upstream is done:
//
//   swallowing    the lost answer (or error page) goes nowhere
//   initializing  the kept initialize, without Mcp-Session-Id, balanced
//                 afresh: its 200 names the new backend session
//   announcing    notifications/initialized with the new id, to the same
//                 server
//   replaying     the client's request as it came, with the new id: its
//                 answer is the client's, judged like any other (a second
//                 loss ends the session with nginx's 404)
//
// A step that fails ends the session as it would have ended without
// healing: the client gets nginx's 404 re-initialize answer.
#include "ngx_mcp_session_heal.hpp"

#include "ngx_mcp_session_cluster.hpp"
#include "ngx_mcp_session_http.hpp"
#include "ngx_mcp_session_request.hpp"
#include "ngx_mcp_session_sticky.hpp"
#include "ngx_mcp_session_store.hpp"

#include "mcp_session/session_id.hpp"

#include <new>
#include <stdexcept>
#include <string>

namespace mcp_ngx {

using upstream_finalize_pt = void (*)(ngx_http_request_t* r, ngx_int_t rc);

// In the request pool (trivially destructible: the pool frees it).
struct heal_ctx {
    enum class step : std::uint8_t { swallowing, initializing, announcing, replaying, ending, failed };
    step at;
    session_loss_cause cause;
    ngx_int_t step_rc;     // what the current step's upstream finished with (0: a whole answer)
    ngx_http_request_t* r;
    ngx_event_t next;  // posted once the current step's upstream is done
    upstream_finalize_pt upstream_finalize;  // the proxy's, wrapped while a step's upstream runs
    ngx_str_t initialize;      // the session's kept initialize body
    ngx_str_t sent_backend_id; // the backend id the lost request carried
    ngx_str_t new_backend_id;  // from the initializing step's answer
    ngx_str_t new_server;      // the server that answered it (mcp_session_sticky), else empty
    // The client's request as it came, put back for the replaying step.
    ngx_chain_t* body;
    off_t content_length_n;
    bool chunked;
    ngx_list_t headers;
    ngx_table_elt_t* session_header;  // its Mcp-Session-Id (the value now the backend's id)
    ngx_table_elt_t* content_length;
    ngx_table_elt_t* transfer_encoding;
    size_t limit_rate;
    bool limit_rate_set;
    // Where the request ran: the steps run there again.
    ngx_str_t location;
    bool named_location;
};

namespace {

constexpr std::string_view session_header = "Mcp-Session-Id";
constexpr std::string_view initialized_notification = R"({"jsonrpc":"2.0","method":"notifications/initialized"})";

std::string_view cause_name(session_loss_cause cause)
{
    return cause == session_loss_cause::backend_lost ? "its backend no longer knows it" : "its server is gone";
}

bool heal_allowed(ngx_http_request_t* r, const request_state* state)
{
    const auto* lcf = static_cast<loc_conf*>(ngx_http_get_module_loc_conf(r, ngx_mcp_session_module));
    const auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_core_module));
    // The body must still be whole in nginx's hands to be sent again (a
    // temp file stays open only with preserve_body, set by the gate), and
    // a post_action would take over the request once the first answer ends.
    return lcf->heal && state->issue_mode && state->status == session_status::valid && state->heal == nullptr &&
           r == r->main && r->method == NGX_HTTP_POST && r->request_body != nullptr &&
           !r->request_body_no_buffering && r->request_body->rest == 0 &&
           (r->preserve_body || r->request_body->temp_file == nullptr) && clcf->post_action.data == nullptr;
}

void post_next_step(heal_ctx* h) { ngx_post_event(&h->next, &ngx_posted_events); }

// Wraps the proxy's finalize_request while a step's upstream runs: the
// next step starts only after nginx is done with this one's connection.
void finalize_then_next_step(ngx_http_request_t* r, ngx_int_t rc)
{
    request_state* state = state_of(r);
    heal_ctx* h = state != nullptr ? state->heal : nullptr;
    if (h == nullptr) {
        return;  // cannot happen: the wrapper is set only with a heal running
    }
    h->upstream_finalize(r, rc);
    h->step_rc = rc;  // an answer cut short (a timeout mid-body) is no step done
    post_next_step(h);
}

// Holds the request past this answer's finalization (which gives the
// reference back) and starts the next step after it.
void after_this_upstream(ngx_http_request_t* r, heal_ctx* h)
{
    ++r->main->count;
    ngx_http_upstream_t* u = r->upstream;
    if (u != nullptr && u->cleanup != nullptr) {
        h->upstream_finalize = u->finalize_request;
        u->finalize_request = finalize_then_next_step;
    } else {
        h->step_rc = 0;
        post_next_step(h);  // already finalized (nginx's error page): posted events run after it
    }
}

// A posted event must not outlive the request that owns it.
void cancel_next_step(void* data) noexcept
{
    auto* h = static_cast<heal_ctx*>(data);
    if (h->next.posted) {
        ngx_delete_posted_event(&h->next);
    }
}

// The request's answer is made anew by the next step: nothing of the
// swallowed one may survive into it.
void forget_answer(ngx_http_request_t* r, const heal_ctx* h)
{
    ngx_memzero(&r->headers_out, sizeof(ngx_http_headers_out_t));
    if (ngx_list_init(&r->headers_out.headers, r->pool, 20, sizeof(ngx_table_elt_t)) != NGX_OK ||
        ngx_list_init(&r->headers_out.trailers, r->pool, 4, sizeof(ngx_table_elt_t)) != NGX_OK) {
        throw std::bad_alloc();
    }
    r->headers_out.content_length_n = -1;
    r->headers_out.last_modified_time = -1;
    r->err_status = 0;
    r->done = 0;
    r->request_complete = 0;
    r->allow_ranges = 0;
    // An answer's X-Accel-Limit-Rate must not slow the next one.
    r->limit_rate = h->limit_rate;
    r->limit_rate_set = h->limit_rate_set ? 1 : 0;
    // Finalized: what comes next is nginx's or the next step's upstream's.
    r->upstream = nullptr;
}

void use_body(ngx_http_request_t* r, ngx_str_t body)
{
    ngx_chain_t* cl = ngx_alloc_chain_link(r->pool);
    ngx_buf_t* b = static_cast<ngx_buf_t*>(ngx_calloc_buf(r->pool));
    if (cl == nullptr || b == nullptr) {
        throw std::bad_alloc();
    }
    b->pos = b->start = body.data;
    b->last = b->end = body.data + body.len;
    b->memory = 1;
    b->last_buf = 1;
    cl->buf = b;
    cl->next = nullptr;
    r->request_body->bufs = cl;
    r->headers_in.content_length_n = static_cast<off_t>(body.len);
    r->headers_in.chunked = 0;
}

bool is_body_framing(const ngx_table_elt_t& h)
{
    constexpr std::string_view length = "Content-Length";
    constexpr std::string_view encoding = "Transfer-Encoding";
    return (h.key.len == length.size() &&
            ngx_strncasecmp(h.key.data, reinterpret_cast<u_char*>(const_cast<char*>(length.data())), length.size()) == 0) ||
           (h.key.len == encoding.size() &&
            ngx_strncasecmp(h.key.data, reinterpret_cast<u_char*>(const_cast<char*>(encoding.data())), encoding.size()) == 0);
}

// A step's headers: the client's, less those that frame its body (a
// module passing $http_content_length on must not announce the client's
// length for another body), with Mcp-Session-Id naming the new backend
// session, or none for the initialize. A copy of the list (elements are
// small); the fields nginx keeps pointers to (Host and the like) still
// point at the originals.
void step_headers(ngx_http_request_t* r, heal_ctx* h, bool with_session)
{
    ngx_list_t copy;
    if (ngx_list_init(&copy, r->pool, 20, sizeof(ngx_table_elt_t)) != NGX_OK) {
        throw std::bad_alloc();
    }
    for (ngx_list_part_t* part = &h->headers.part; part != nullptr; part = part->next) {
        auto* fields = static_cast<ngx_table_elt_t*>(part->elts);
        for (ngx_uint_t i = 0; i < part->nelts; ++i) {
            const bool session = &fields[i] == h->session_header;
            if ((session && !with_session) || is_body_framing(fields[i])) {
                continue;
            }
            auto* slot = static_cast<ngx_table_elt_t*>(ngx_list_push(&copy));
            if (slot == nullptr) {
                throw std::bad_alloc();
            }
            *slot = fields[i];
            if (session) {
                slot->value = h->new_backend_id;
            }
        }
    }
    r->headers_in.headers = copy;
    // A list of one part points at its own first part: re-aim it at the copy's new home.
    if (copy.last == &copy.part) {
        r->headers_in.headers.last = &r->headers_in.headers.part;
    }
    r->headers_in.content_length = nullptr;
    r->headers_in.transfer_encoding = nullptr;
}

// nginx caches a variable's value for the request, across internal
// redirects: values computed from the previous step's body or session
// header must be computed again.
void forget_step_variables(ngx_http_request_t* r)
{
    const auto* mcf = static_cast<main_conf*>(ngx_http_get_module_main_conf(r, ngx_mcp_session_module));
    const auto* indexes = static_cast<const ngx_int_t*>(mcf->heal_variables.elts);
    for (ngx_uint_t i = 0; i < mcf->heal_variables.nelts; ++i) {
        r->variables[indexes[i]].valid = 0;
        r->variables[indexes[i]].not_found = 0;
    }
}

void prepare_step(ngx_http_request_t* r, request_state* state, heal_ctx* h)
{
    forget_step_variables(r);
    switch (h->at) {
    case heal_ctx::step::swallowing:
        h->at = heal_ctx::step::initializing;
        use_body(r, h->initialize);
        step_headers(r, h, false);
        state->pinned_server = ngx_str_t{0, nullptr};  // balanced like a new session
        break;
    case heal_ctx::step::initializing:
        h->at = heal_ctx::step::announcing;
        use_body(r, ngx_str_t{initialized_notification.size(),
                              reinterpret_cast<u_char*>(const_cast<char*>(initialized_notification.data()))});
        step_headers(r, h, true);
        state->pinned_server = h->new_server;
        break;
    case heal_ctx::step::announcing:
        h->at = heal_ctx::step::replaying;
        r->request_body->bufs = h->body;
        r->headers_in.content_length_n = h->content_length_n;
        r->headers_in.chunked = h->chunked ? 1 : 0;
        r->headers_in.headers = h->headers;  // saved from this same place: its self-pointer holds
        r->headers_in.content_length = h->content_length;
        r->headers_in.transfer_encoding = h->transfer_encoding;
        h->session_header->value = h->new_backend_id;
        state->sent_backend_id = h->new_backend_id;
        state->pinned_server = h->new_server;
        break;
    case heal_ctx::step::replaying:
    case heal_ctx::step::ending:
    case heal_ctx::step::failed:
        throw std::logic_error("no step after the last");
    }
    state->lost_answer = nullptr;
    state->pinned_server_gone = false;
}

void run_next_step(ngx_event_t* ev) noexcept
{
    auto* h = static_cast<heal_ctx*>(ev->data);
    ngx_http_request_t* r = h->r;
    ngx_connection_t* c = r->connection;
    if (c->error) {
        ngx_http_finalize_request(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);  // the client left meanwhile
        ngx_http_run_posted_requests(c);
        return;
    }
    try {
        forget_answer(r, h);
        if (h->step_rc != 0) {
            // The step's answer was cut short: nginx's 502 for it becomes
            // the 404 in the header filter (heal_header_filter, ending).
            h->at = heal_ctx::step::ending;
            ngx_http_finalize_request(r, NGX_HTTP_BAD_GATEWAY);
            ngx_http_run_posted_requests(c);
            return;
        }
        prepare_step(r, state_of(r), h);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0, "mcp_session: healing the session failed: %s", e.what());
        ngx_http_finalize_request(r, NGX_ERROR);
        ngx_http_run_posted_requests(c);
        return;
    }
    // The reference after_this_upstream took kept the request alive through
    // the step's finalization, which gave it back. internal_redirect takes
    // one for the new pass, which NGX_DONE gives back: the request now
    // lives as long as that pass.
    if (h->named_location) {
        ngx_http_named_location(r, &h->location);
    } else {
        ngx_http_internal_redirect(r, &r->uri, &r->args);
    }
    ngx_http_finalize_request(r, NGX_DONE);
    ngx_http_run_posted_requests(c);
}

// One warn line a second per worker: a dead upstream fails every heal at once.
void warn_heal_failed(ngx_http_request_t* r, const request_state* state, std::string_view why)
{
    static time_t warned_at = 0;
    if (warned_at == ngx_time()) {
        return;
    }
    warned_at = ngx_time();
    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "mcp_session zone \"%V\": could not heal a lost session: %*s; the client gets 404",
                  &state->zone->name, why.size(), why.data());
}

ngx_int_t fail(ngx_http_request_t* r, request_state* state, heal_ctx* h, std::string_view why,
               ngx_http_output_header_filter_pt next_header)
{
    h->at = heal_ctx::step::failed;
    warn_heal_failed(r, state, why);
    session_store(*state->zone).note_heal_failed();
    return answer_session_gone(r, state, h->cause, next_header);
}

// The initializing step's answer: a 200 naming exactly one backend id
// nginx can store is a new backend session.
bool take_new_session(ngx_http_request_t* r, heal_ctx* h)
{
    if (r->headers_out.status != NGX_HTTP_OK) {
        return false;
    }
    const header_match header = find_header(r->headers_out.headers, session_header);
    if (header.count != 1 || !mcp_session::is_storable_session_id(to_view(header.first->value))) {
        return false;
    }
    h->new_backend_id = pool_copy(r, to_view(header.first->value));
    h->new_server = pool_copy(r, sticky_server_of(r));
    if (h->new_backend_id.data == nullptr || (h->new_server.data == nullptr && h->new_server.len > 0)) {
        throw std::bad_alloc();
    }
    return true;
}

// After notifications/initialized: the client's id now names the new
// backend session. When another request healed the session first, this
// request's new backend session serves only its replay.
bool map_to_new_session(ngx_http_request_t* r, request_state* state, const heal_ctx* h)
{
    switch (session_store(*state->zone)
                .heal(state->key, to_view(h->sent_backend_id), to_view(h->new_backend_id), to_view(h->new_server))) {
    case session_store::heal_result::healed:
        share_session(*state->zone, state->key);  // the other nodes send it to the new backend session too
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "mcp_session zone \"%V\": session healed (%*s): a new backend session%s%V", &state->zone->name,
                      cause_name(h->cause).size(), cause_name(h->cause).data(), h->new_server.len > 0 ? " on " : "",
                      &h->new_server);
        return true;
    case session_store::heal_result::superseded:
        return true;
    case session_store::heal_result::failed:
        break;
    }
    return false;
}

}  // namespace

bool start_heal(ngx_http_request_t* r, request_state* state, session_loss_cause cause)
{
    if (!heal_allowed(r, state)) {
        return false;
    }
    const session_store::heal_facts facts = session_store(*state->zone).heal_facts_of(state->key);
    const header_match presented = find_header(r->headers_in.headers, session_header);
    // Re-mapped since this request was sent: another request healed the
    // session, and this one only needs to go again, to the session as it is.
    const bool remapped = !facts.backend_id.empty() && facts.backend_id != to_view(state->sent_backend_id);
    if (!facts.found || (facts.initialize.empty() && !remapped) || presented.count != 1) {
        return false;
    }
    auto* h = static_cast<heal_ctx*>(ngx_pcalloc(r->pool, sizeof(heal_ctx)));
    ngx_pool_cleanup_t* cleanup = ngx_pool_cleanup_add(r->pool, 0);
    if (h == nullptr || cleanup == nullptr) {
        return false;
    }
    if (remapped) {
        h->at = heal_ctx::step::announcing;  // what follows it is the replay
        h->new_backend_id = pool_copy(r, facts.backend_id);
        h->new_server = pool_copy(r, facts.pinned);
        if (h->new_backend_id.data == nullptr || (h->new_server.data == nullptr && !facts.pinned.empty())) {
            return false;
        }
    } else {
        h->at = heal_ctx::step::swallowing;
        h->initialize = pool_copy(r, facts.initialize);
        if (h->initialize.data == nullptr) {
            return false;
        }
    }
    h->cause = cause;
    h->r = r;
    h->next.data = h;
    h->next.handler = run_next_step;
    h->next.log = r->connection->log;
    h->sent_backend_id = state->sent_backend_id;
    h->body = r->request_body->bufs;
    h->content_length_n = r->headers_in.content_length_n;
    h->chunked = r->headers_in.chunked != 0;
    h->headers = r->headers_in.headers;
    h->session_header = presented.first;
    h->content_length = r->headers_in.content_length;
    h->transfer_encoding = r->headers_in.transfer_encoding;
    h->limit_rate = r->limit_rate;
    h->limit_rate_set = r->limit_rate_set != 0;
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_get_module_loc_conf(r, ngx_http_core_module));
    h->named_location = clcf->named != 0;
    h->location = clcf->name;
    cleanup->handler = cancel_next_step;
    cleanup->data = h;

    state->heal = h;
    after_this_upstream(r, h);
    return true;
}

bool heal_owns_answer(const request_state* state)
{
    return state != nullptr && state->heal != nullptr && state->heal->at != heal_ctx::step::replaying &&
           state->heal->at != heal_ctx::step::failed;  // ending: the 502 nginx makes is turned into the 404
}

ngx_int_t heal_header_filter(ngx_http_request_t* r, request_state* state, ngx_http_output_header_filter_pt next_header)
{
    heal_ctx* h = state->heal;
    switch (h->at) {
    case heal_ctx::step::swallowing:
        return NGX_OK;
    case heal_ctx::step::initializing:
        if (!answered_by_backend(r)) {
            return fail(r, state, h, "no upstream server answered initialize", next_header);
        }
        if (!take_new_session(r, h)) {
            return fail(r, state, h, "the backend did not make a session for the kept initialize", next_header);
        }
        after_this_upstream(r, h);
        return NGX_OK;
    case heal_ctx::step::announcing:
        if (!answered_by_backend(r) || r->headers_out.status < 200 || r->headers_out.status >= 300) {
            return fail(r, state, h, "the new backend session refused notifications/initialized", next_header);
        }
        if (!map_to_new_session(r, state, h)) {
            return fail(r, state, h, "the session ended meanwhile, or the zone has no room", next_header);
        }
        after_this_upstream(r, h);
        return NGX_OK;
    case heal_ctx::step::ending:
        return fail(r, state, h, "the backend's answer to a step ended early", next_header);
    case heal_ctx::step::replaying:
    case heal_ctx::step::failed:
        break;
    }
    return NGX_ERROR;  // heal_owns_answer said no: the caller never comes here
}

ngx_int_t heal_body_filter(ngx_http_request_t*, request_state*, ngx_chain_t* in)
{
    consume_chain(in);  // the upstream reuses its buffers once they are consumed
    return NGX_OK;
}

ngx_int_t register_heal_variables(ngx_conf_t* cf) noexcept
{
    static ngx_str_t names[] = {ngx_string("content_length"),         ngx_string("request_body"),
                                ngx_string("http_content_length"),    ngx_string("http_transfer_encoding"),
                                ngx_string("http_mcp_session_id"),    ngx_string("request_body_file")};
    auto* mcf = static_cast<main_conf*>(ngx_http_conf_get_module_main_conf(cf, ngx_mcp_session_module));
    for (ngx_str_t& name : names) {
        const ngx_int_t index = ngx_http_get_variable_index(cf, &name);
        auto* slot = static_cast<ngx_int_t*>(ngx_array_push(&mcf->heal_variables));
        if (index == NGX_ERROR || slot == nullptr) {
            return NGX_ERROR;
        }
        *slot = index;
    }
    return NGX_OK;
}

}  // namespace mcp_ngx
