// $pairguard_decision, $pairguard_retry_after, $pairguard_policy and the
// prefix variable $pairguard_body_NAME.

#include "ngx_http_pairguard.h"

namespace {

void set_value(ngx_http_variable_value_t* v, u_char* data, size_t len) {
    v->data = data;
    v->len = static_cast<unsigned>(len);
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
}

ngx_int_t decision_variable(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept {
    ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_decided_ctx(r);
    if (ctx == nullptr || !ctx->decided) {
        v->not_found = 1;
        return NGX_OK;
    }
    static u_char allow[] = "allow";
    static u_char deny[] = "deny";
    if (ctx->denied) {
        set_value(v, deny, 4);
    } else {
        set_value(v, allow, 5);
    }
    return NGX_OK;
}

ngx_int_t retry_after_variable(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept {
    ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_decided_ctx(r);
    if (ctx == nullptr || !ctx->denied || ctx->retry_after <= 0) {
        v->not_found = 1;
        return NGX_OK;
    }
    auto* p = static_cast<u_char*>(ngx_pnalloc(r->pool, NGX_INT64_LEN));
    if (p == nullptr) {
        return NGX_ERROR;
    }
    set_value(v, p, static_cast<size_t>(ngx_sprintf(p, "%L", ctx->retry_after) - p));
    return NGX_OK;
}

ngx_int_t policy_variable(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept {
    ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_decided_ctx(r);
    if (ctx == nullptr || ctx->deny_policy.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }
    set_value(v, ctx->deny_policy.data, ctx->deny_policy.len);
    return NGX_OK;
}

ngx_int_t user_variable(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept {
    ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_decided_ctx(r);
    if (ctx != nullptr && !ctx->auth_user.empty()) {
        set_value(v, reinterpret_cast<u_char*>(ctx->auth_user.data()), ctx->auth_user.size());
        return NGX_OK;
    }
    if (ctx == nullptr || ctx->paired != ngx_http_pairguard_ctx_t::paired_e::approved || ctx->paired_user.empty()) {
        v->not_found = 1;
        return NGX_OK;
    }
    set_value(v, reinterpret_cast<u_char*>(ctx->paired_user.data()), ctx->paired_user.size());
    return NGX_OK;
}

ngx_int_t body_variable(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t data) noexcept try {
    auto* name = reinterpret_cast<ngx_str_t*>(data);
    static const size_t prefix = sizeof("pairguard_body_") - 1;
    ngx_http_pairguard_ctx_t* ctx = ngx_http_pairguard_decided_ctx(r);
    if (ctx == nullptr || !ctx->body_parsed || !ctx->body || name->len <= prefix) {
        v->not_found = 1;
        return NGX_OK;
    }
    std::string_view field(reinterpret_cast<const char*>(name->data) + prefix, name->len - prefix);
    std::string_view value = ctx->body->get(field);
    if (value.empty()) {
        v->not_found = 1;
        return NGX_OK;
    }
    set_value(v, reinterpret_cast<u_char*>(const_cast<char*>(value.data())), value.size());
    return NGX_OK;
} catch (const std::exception& e) {
    ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
    return NGX_ERROR;
}

// $pairguard_client_net: the client's network, per pairguard_client_prefix.
ngx_int_t client_net_variable(ngx_http_request_t* r, ngx_http_variable_value_t* v, uintptr_t) noexcept try {
    std::string net = ngx_http_pairguard_client_net(r);
    auto* p = static_cast<u_char*>(ngx_pnalloc(r->pool, net.size()));
    if (p == nullptr) {
        return NGX_ERROR;
    }
    ngx_memcpy(p, net.data(), net.size());
    set_value(v, p, net.size());
    return NGX_OK;
} catch (const std::exception& e) {
    ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0, "pairguard: %s", e.what());
    return NGX_ERROR;
}

struct variable_def_t {
    const char* name;
    ngx_http_get_variable_pt handler;
    ngx_uint_t flags;
};

const variable_def_t variables[] = {
    {"pairguard_decision", decision_variable, NGX_HTTP_VAR_NOCACHEABLE},
    {"pairguard_retry_after", retry_after_variable, NGX_HTTP_VAR_NOCACHEABLE},
    {"pairguard_policy", policy_variable, NGX_HTTP_VAR_NOCACHEABLE},
    {"pairguard_user", user_variable, NGX_HTTP_VAR_NOCACHEABLE},
    {"pairguard_client_net", client_net_variable, NGX_HTTP_VAR_NOCACHEABLE},
    {"pairguard_body_", body_variable, NGX_HTTP_VAR_NOCACHEABLE | NGX_HTTP_VAR_PREFIX},
};

}  // namespace

ngx_int_t ngx_http_pairguard_add_variables(ngx_conf_t* cf) {
    for (const auto& def : variables) {
        ngx_str_t name = ngx_pairguard_str(def.name);
        ngx_http_variable_t* var = ngx_http_add_variable(cf, &name, def.flags);
        if (var == nullptr) {
            return NGX_ERROR;
        }
        var->get_handler = def.handler;
        var->data = 0;
    }
    return NGX_OK;
}
