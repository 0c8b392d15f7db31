// Module tables, directives, configuration and the per-worker Redis client.

#include <memory>

#include "../core/events.hpp"
#include "../core/key_template.hpp"
#include "../core/store_scripts.hpp"
#include "ngx_http_pairguard.h"

namespace {

std::unique_ptr<ngx_pairguard_redis_t> worker_store;
std::unique_ptr<ngx_pairguard_redis_t> worker_events;  // the events channel

char* ngx_http_pairguard_redis(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* ngx_http_pairguard_secret_file(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* ngx_http_pairguard_policy(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* ngx_http_pairguard(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* ngx_http_pairguard_status_list(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* ngx_http_pairguard_deny_status(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* ngx_http_pairguard_pairing_policy(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* ngx_http_pairguard_pairing(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* ngx_http_pairguard_require_paired(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;
char* ngx_http_pairguard_client_prefix(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept;

ngx_int_t ngx_http_pairguard_preconfiguration(ngx_conf_t* cf) noexcept;
ngx_int_t ngx_http_pairguard_postconfiguration(ngx_conf_t* cf) noexcept;
void* ngx_http_pairguard_create_main_conf(ngx_conf_t* cf) noexcept;
char* ngx_http_pairguard_init_main_conf(ngx_conf_t* cf, void* conf) noexcept;
void* ngx_http_pairguard_create_loc_conf(ngx_conf_t* cf) noexcept;
char* ngx_http_pairguard_merge_loc_conf(ngx_conf_t* cf, void* parent, void* child) noexcept;
ngx_int_t ngx_http_pairguard_init_process(ngx_cycle_t* cycle) noexcept;
void ngx_http_pairguard_exit_process(ngx_cycle_t* cycle) noexcept;

ngx_conf_enum_t ngx_http_pairguard_store_down_modes[] = {
    {ngx_string("local"), NGX_HTTP_PAIRGUARD_DOWN_LOCAL},
    {ngx_string("deny"), NGX_HTTP_PAIRGUARD_DOWN_DENY},
    {ngx_string("allow"), NGX_HTTP_PAIRGUARD_DOWN_ALLOW},
    {ngx_null_string, 0},
};

ngx_command_t ngx_http_pairguard_commands[] = {
    {ngx_string("pairguard_redis"), NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE, ngx_http_pairguard_redis,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("pairguard_secret_file"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_http_pairguard_secret_file,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("pairguard_store_down"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_conf_set_enum_slot,
     NGX_HTTP_MAIN_CONF_OFFSET, offsetof(ngx_http_pairguard_main_conf_t, store_down),
     ngx_http_pairguard_store_down_modes},
    {ngx_string("pairguard_zone"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_conf_set_size_slot,
     NGX_HTTP_MAIN_CONF_OFFSET, offsetof(ngx_http_pairguard_main_conf_t, zone_size), nullptr},
    {ngx_string("pairguard_policy"), NGX_HTTP_MAIN_CONF | NGX_CONF_2MORE, ngx_http_pairguard_policy,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("pairguard"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_http_pairguard, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("pairguard_failure_status"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_1MORE,
     ngx_http_pairguard_status_list, NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_pairguard_loc_conf_t, failure_status),
     nullptr},
    {ngx_string("pairguard_neutral_status"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_1MORE,
     ngx_http_pairguard_status_list, NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_pairguard_loc_conf_t, neutral_status),
     nullptr},
    {ngx_string("pairguard_deny_status"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_http_pairguard_deny_status, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("pairguard_dry_run"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_FLAG,
     ngx_conf_set_flag_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_pairguard_loc_conf_t, dry_run), nullptr},
    {ngx_string("pairguard_client_prefix"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE2,
     ngx_http_pairguard_client_prefix, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("pairguard_pairing_policy"), NGX_HTTP_MAIN_CONF | NGX_CONF_ANY, ngx_http_pairguard_pairing_policy,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("pairguard_events_log"), NGX_HTTP_MAIN_CONF | NGX_CONF_FLAG, ngx_conf_set_flag_slot,
     NGX_HTTP_MAIN_CONF_OFFSET, offsetof(ngx_http_pairguard_main_conf_t, events_log), nullptr},
    {ngx_string("pairguard_pairing"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, ngx_http_pairguard_pairing,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("pairguard_auth_policy"), NGX_HTTP_MAIN_CONF | NGX_CONF_ANY, ngx_http_pairguard_auth_policy,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("pairguard_thread_pool"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_http_pairguard_thread_pool,
     NGX_HTTP_MAIN_CONF_OFFSET, 0, nullptr},
    {ngx_string("pairguard_auth"), NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1, ngx_http_pairguard_auth,
     NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("pairguard_auth_require"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
     ngx_http_pairguard_auth_require, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    {ngx_string("pairguard_require_paired"), NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE2,
     ngx_http_pairguard_require_paired, NGX_HTTP_LOC_CONF_OFFSET, 0, nullptr},
    ngx_null_command,
};

ngx_http_module_t ngx_http_pairguard_module_ctx = {
    ngx_http_pairguard_preconfiguration,   // preconfiguration
    ngx_http_pairguard_postconfiguration,  // postconfiguration
    ngx_http_pairguard_create_main_conf,   // create main configuration
    ngx_http_pairguard_init_main_conf,     // init main configuration
    nullptr,                               // create server configuration
    nullptr,                               // merge server configuration
    ngx_http_pairguard_create_loc_conf,    // create location configuration
    ngx_http_pairguard_merge_loc_conf,     // merge location configuration
};

}  // namespace

ngx_module_t ngx_http_pairguard_module = {
    NGX_MODULE_V1,
    &ngx_http_pairguard_module_ctx,  // module context
    ngx_http_pairguard_commands,     // module directives
    NGX_HTTP_MODULE,                 // module type
    nullptr,                         // init master
    ngx_http_pairguard_access_wrap,  // init module
    ngx_http_pairguard_init_process, // init process
    nullptr,                         // init thread
    nullptr,                         // exit thread
    ngx_http_pairguard_exit_process, // exit process
    nullptr,                         // exit master
    NGX_MODULE_V1_PADDING,
};

ngx_pairguard_redis_t* ngx_http_pairguard_store() {
    return worker_store.get();
}

namespace {

std::string_view view(const ngx_str_t& s) {
    return std::string_view(reinterpret_cast<const char*>(s.data), s.len);
}

// Reads a small file of secret material; the contents never reach a log.
// A password file loses its trailing newline; the HMAC secret is taken byte
// for byte (random bytes may well end in CR or LF).
char* read_secret(ngx_conf_t* cf, ngx_str_t* name, std::string& out, bool strip_newline) {
    if (ngx_conf_full_name(cf->cycle, name, 1) != NGX_OK) {
        return const_cast<char*>(static_cast<const char*>(NGX_CONF_ERROR));
    }
    ngx_file_t file;
    ngx_memzero(&file, sizeof(ngx_file_t));
    file.name = *name;
    file.log = cf->log;
    file.fd = ngx_open_file(name->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno, ngx_open_file_n " \"%V\" failed", name);
        return const_cast<char*>(static_cast<const char*>(NGX_CONF_ERROR));
    }
    u_char buf[4096];
    ssize_t n = ngx_read_file(&file, buf, sizeof(buf), 0);
    ngx_close_file(file.fd);
    if (n == NGX_ERROR) {
        return const_cast<char*>(static_cast<const char*>(NGX_CONF_ERROR));
    }
    while (strip_newline && n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }
    out.assign(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
    ngx_explicit_memzero(buf, sizeof(buf));
    return NGX_CONF_OK;
}

#define PG_CONF_ERROR const_cast<char*>(static_cast<const char*>(NGX_CONF_ERROR))

}  // namespace

ngx_int_t ngx_http_pairguard_compile_key(ngx_conf_t* cf, std::string_view text, ngx_array_t* out, bool* uses_body,
                                         std::string& err) {
    std::vector<pairguard::KeyPart> parts;
    err = pairguard::parse_key_template(text, parts);
    if (!err.empty()) {
        return NGX_ERROR;
    }
    if (ngx_array_init(out, cf->pool, parts.size() ? parts.size() : 1, sizeof(ngx_http_pairguard_key_part_t))
        != NGX_OK) {
        return NGX_ERROR;
    }
    *uses_body = false;
    for (const auto& part : parts) {
        auto* kp = static_cast<ngx_http_pairguard_key_part_t*>(ngx_array_push(out));
        ngx_str_t t;
        t.len = part.text.size();
        t.data = static_cast<u_char*>(ngx_pnalloc(cf->pool, t.len ? t.len : 1));
        if (kp == nullptr || t.data == nullptr) {
            return NGX_ERROR;
        }
        ngx_memcpy(t.data, part.text.data(), t.len);
        if (part.variable) {
            // an unknown name is reported by nginx when variables are initialised
            kp->index = ngx_http_get_variable_index(cf, &t);
            if (kp->index == NGX_ERROR) {
                return NGX_ERROR;
            }
            ngx_str_null(&kp->literal);
            ngx_str_null(&kp->body_field);
            ngx_str_null(&kp->header);
            ngx_str_null(&kp->cookie);
            ngx_str_null(&kp->arg);
            static constexpr size_t body_prefix = sizeof("pairguard_body_") - 1;
            if (part.text.rfind("pairguard_body_", 0) == 0) {
                *uses_body = true;
                kp->body_field.data = t.data + body_prefix;
                kp->body_field.len = t.len - body_prefix;
            }
            // the name in lower case (nginx's variable names ignore case);
            // $http_cookie and $http_x_forwarded_for are every header of
            // that name joined, nothing to tell apart
            u_char* low = static_cast<u_char*>(ngx_pnalloc(cf->pool, t.len ? t.len : 1));
            if (low == nullptr) {
                return NGX_ERROR;
            }
            ngx_strlow(low, t.data, t.len);
            std::string_view name(reinterpret_cast<const char*>(low), t.len);
            if (name.rfind("http_", 0) == 0 && name != "http_cookie" && name != "http_x_forwarded_for") {
                kp->header.data = low + 5;
                kp->header.len = t.len - 5;
            } else if (name.rfind("cookie_", 0) == 0) {
                kp->cookie.data = low + 7;
                kp->cookie.len = t.len - 7;
            } else if (name.rfind("arg_", 0) == 0) {
                kp->arg.data = low + 4;
                kp->arg.len = t.len - 4;
            }
            kp->binary = name == "binary_remote_addr";
        } else {
            kp->index = NGX_ERROR;
            kp->binary = false;
            kp->literal = t;
            ngx_str_null(&kp->body_field);
            ngx_str_null(&kp->header);
            ngx_str_null(&kp->cookie);
            ngx_str_null(&kp->arg);
        }
    }
    return NGX_OK;
}

namespace {

// `tls`: one client TLS context for Redis and the sentinels, made while
// reading the configuration (certificates are read now, as nginx does).
ngx_int_t ngx_http_pairguard_redis_tls(ngx_conf_t* cf, ngx_pairguard_redis_conf_t* rc) {
    auto* ssl = static_cast<ngx_ssl_t*>(ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t)));
    if (ssl == nullptr) {
        return NGX_ERROR;
    }
    ssl->log = cf->log;
    if (ngx_ssl_create(ssl, NGX_SSL_TLSv1_2 | NGX_SSL_TLSv1_3, nullptr) != NGX_OK) {
        return NGX_ERROR;
    }
    ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == nullptr) {
        ngx_ssl_cleanup_ctx(ssl);
        return NGX_ERROR;
    }
    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = ssl;

    auto str = [cf](const std::string& s) {
        ngx_str_t v;
        v.len = s.size();
        v.data = static_cast<u_char*>(ngx_pnalloc(cf->pool, s.size() + 1));
        if (v.data != nullptr) {
            ngx_memcpy(v.data, s.c_str(), s.size() + 1);
        }
        return v;
    };
    const pairguard::RedisTls& t = rc->spec.tls;
    if (!t.certificate.empty()) {
        ngx_str_t cert = str(t.certificate), key = str(t.certificate_key);
        if (cert.data == nullptr || key.data == nullptr || ngx_ssl_certificate(cf, ssl, &cert, &key, nullptr) != NGX_OK) {
            return NGX_ERROR;
        }
    }
    if (t.verify) {
        if (t.trusted_certificate.empty()) {
            // a managed Redis with a public certificate: the system's CAs
            if (SSL_CTX_set_default_verify_paths(ssl->ctx) != 1) {
                ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0, const_cast<char*>("pairguard_redis: no system CA certificates"));
                return NGX_ERROR;
            }
            ngx_str_t none = ngx_null_string;
            if (ngx_ssl_trusted_certificate(cf, ssl, &none, 4) != NGX_OK) {
                return NGX_ERROR;
            }
        } else {
            ngx_str_t ca = str(t.trusted_certificate);
            if (ca.data == nullptr || ngx_ssl_trusted_certificate(cf, ssl, &ca, 4) != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }
    if (ngx_ssl_client_session_cache(cf, ssl, 1) != NGX_OK) {
        return NGX_ERROR;
    }
    rc->ssl = ssl;
    return NGX_OK;
}

char* ngx_http_pairguard_redis(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    try {
        auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(conf);
        if (mcf->redis_set) {
            return const_cast<char*>("is duplicate");
        }
        auto* value = static_cast<ngx_str_t*>(cf->args->elts);

        auto* rc = ngx_pairguard_pool_new<ngx_pairguard_redis_conf_t>(cf->pool);
        if (rc == nullptr) {
            return PG_CONF_ERROR;
        }
        std::vector<std::string_view> words;
        for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
            words.push_back(view(value[i]));
            // the label is logged: the address words only, never a password
            std::string_view w = view(value[i]);
            if (i == 1 || w == "tls" || w.rfind("master=", 0) == 0) {
                rc->label += (i == 1 ? "" : " ") + std::string(w);
            }
        }
        std::string err = pairguard::parse_redis_spec(words, rc->spec);
        if (!err.empty()) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "pairguard_redis: %s", err.c_str());
            return PG_CONF_ERROR;
        }
        if (rc->spec.timeout_ms > 0) {
            rc->timeout = static_cast<ngx_msec_t>(rc->spec.timeout_ms);
        }
        if (!rc->spec.prefix.empty()) {
            ngx_str_t p;
            p.len = rc->spec.prefix.size();
            p.data = static_cast<u_char*>(ngx_pnalloc(cf->pool, p.len));
            if (p.data == nullptr) {
                return PG_CONF_ERROR;
            }
            ngx_memcpy(p.data, rc->spec.prefix.data(), p.len);
            mcf->prefix = p;
        }

        // names found now (a blocking lookup is fine while reading the
        // configuration); with a resolver in the http block they are looked
        // up again, without blocking, at every reconnection
        for (const pairguard::RedisEndpoint& ep : rc->spec.endpoints) {
            rc->addrs.emplace_back();
            if (!ep.unix_path.empty()) {
                continue;
            }
            std::string text = ep.label();
            ngx_url_t u;
            ngx_memzero(&u, sizeof(ngx_url_t));
            u.url.data = reinterpret_cast<u_char*>(text.data());
            u.url.len = text.size();
            u.default_port = 6379;
            if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
                if (u.err != nullptr && ngx_strcmp(u.err, "host not found") != 0) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "pairguard_redis: %s in \"%s\"", u.err, text.c_str());
                    return PG_CONF_ERROR;
                }
                // fine with a resolver in the http block (known once the
                // block is read): the postconfiguration decides
                if (rc->unresolved.empty()) {
                    rc->unresolved = text;
                }
                continue;
            }
            for (ngx_uint_t k = 0; k < u.naddrs; k++) {
                rc->addrs.back().emplace_back(reinterpret_cast<const char*>(u.addrs[k].sockaddr), u.addrs[k].socklen);
            }
        }

        if (rc->spec.tls.on && ngx_http_pairguard_redis_tls(cf, rc) != NGX_OK) {
            return PG_CONF_ERROR;
        }

        mcf->redis = rc;
        mcf->redis_set = true;
        return NGX_CONF_OK;
    } catch (const std::exception& e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", e.what());
        return PG_CONF_ERROR;
    }
}

char* ngx_http_pairguard_secret_file(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    try {
        auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(conf);
        if (mcf->keys != nullptr) {
            return const_cast<char*>("is duplicate");
        }
        ngx_str_t name = static_cast<ngx_str_t*>(cf->args->elts)[1];
        std::string secret;
        if (read_secret(cf, &name, secret, false) != NGX_CONF_OK) {
            return PG_CONF_ERROR;
        }
        if (secret.size() < pairguard::kSecretMinBytes) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "secret file \"%V\" holds %uz bytes, at least %uz are needed", &name,
                               secret.size(), pairguard::kSecretMinBytes);
            return PG_CONF_ERROR;
        }
        mcf->keys = ngx_pairguard_pool_new<pairguard::KeyDeriver>(cf->pool, secret);
        ngx_explicit_memzero(secret.data(), secret.size());
        return mcf->keys ? NGX_CONF_OK : PG_CONF_ERROR;
    } catch (const std::exception& e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", e.what());
        return PG_CONF_ERROR;
    }
}

char* ngx_http_pairguard_policy(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    try {
        auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(conf);
        auto* value = static_cast<ngx_str_t*>(cf->args->elts);

        auto** existing = static_cast<ngx_http_pairguard_policy_t**>(mcf->policies.elts);
        for (ngx_uint_t i = 0; i < mcf->policies.nelts; i++) {
            if (existing[i]->name.len == value[1].len
                && ngx_strncmp(existing[i]->name.data, value[1].data, value[1].len) == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "duplicate pairguard policy \"%V\"", &value[1]);
                return PG_CONF_ERROR;
            }
        }

        std::vector<std::string_view> args;
        for (ngx_uint_t i = 2; i < cf->args->nelts; i++) {
            args.push_back(view(value[i]));
        }
        pairguard::PolicySpec spec;
        std::string err = pairguard::parse_policy_args(args, spec);
        if (!err.empty()) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in pairguard policy \"%V\"", err.c_str(), &value[1]);
            return PG_CONF_ERROR;
        }

        auto* p = static_cast<ngx_http_pairguard_policy_t*>(ngx_pcalloc(cf->pool, sizeof(ngx_http_pairguard_policy_t)));
        if (p == nullptr) {
            return PG_CONF_ERROR;
        }
        new (&p->limits) pairguard::PolicyLimits(spec.limits);
        p->name = value[1];
        p->key_normalize = spec.key_normalize;

        pairguard::RespArgs limits;
        pairguard::append_limits(limits, p->limits);
        p->limits_resp.len = limits.data.size();
        p->limits_resp.data = static_cast<u_char*>(ngx_pnalloc(cf->pool, limits.data.size()));
        if (p->limits_resp.data == nullptr) {
            return PG_CONF_ERROR;
        }
        ngx_memcpy(p->limits_resp.data, limits.data.data(), limits.data.size());

        if (!spec.device.cookie.empty()) {
            // one cookie per policy: two policies setting the same name would
            // overwrite each other's tokens in the browser
            for (ngx_uint_t i = 0; i < mcf->policies.nelts; i++) {
                if (view(existing[i]->device_cookie) == spec.device.cookie) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                       "device_cookie \"%s\" in pairguard policy \"%V\" is used by policy \"%V\" too",
                                       spec.device.cookie.c_str(), &value[1], &existing[i]->name);
                    return PG_CONF_ERROR;
                }
            }
            p->device_cookie.len = spec.device.cookie.size();
            p->device_cookie.data = static_cast<u_char*>(ngx_pnalloc(cf->pool, spec.device.cookie.size()));
            if (p->device_cookie.data == nullptr) {
                return PG_CONF_ERROR;
            }
            ngx_memcpy(p->device_cookie.data, spec.device.cookie.data(), spec.device.cookie.size());
            p->device_ttl_s = spec.device.ttl_ms / 1000;
            new (&p->device_limits) pairguard::PolicyLimits(spec.device.limits);
            pairguard::RespArgs dl;
            pairguard::append_limits(dl, p->device_limits);
            p->device_limits_resp.len = dl.data.size();
            p->device_limits_resp.data = static_cast<u_char*>(ngx_pnalloc(cf->pool, dl.data.size()));
            if (p->device_limits_resp.data == nullptr) {
                return PG_CONF_ERROR;
            }
            ngx_memcpy(p->device_limits_resp.data, dl.data.data(), dl.data.size());
        }

        std::vector<pairguard::KeyPart> kparts;
        if (pairguard::parse_key_template(spec.key, kparts).empty()) {
            // a device is trusted for one account: a key made of the client's
            // address alone would let one login mint devices for a whole
            // network, each usable with any user name
            if (!spec.device.cookie.empty() && !pairguard::key_names_account(kparts)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "device_cookie needs an account key (a body field, header, argument or cookie "
                                   "naming the account), not the client's address alone, in pairguard policy \"%V\"",
                                   &value[1]);
                return PG_CONF_ERROR;
            }
            p->pinned_to_client = pairguard::key_pinned_to_client(kparts);
        }

        std::string key_err;
        if (ngx_http_pairguard_compile_key(cf, spec.key, &p->key, &p->uses_body, key_err) != NGX_OK) {
            if (!key_err.empty()) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in pairguard policy \"%V\"", key_err.c_str(), &value[1]);
            }
            return PG_CONF_ERROR;
        }
        if (p->key_normalize) {
            // the literal text in lower case once, as a whole-value fold made
            // it (the same keys), its blanks kept: the operator wrote them
            auto* kparts = static_cast<ngx_http_pairguard_key_part_t*>(p->key.elts);
            for (ngx_uint_t i = 0; i < p->key.nelts; i++) {
                if (kparts[i].index == NGX_ERROR) {
                    ngx_strlow(kparts[i].literal.data, kparts[i].literal.data, kparts[i].literal.len);
                }
            }
        }

        auto** slot = static_cast<ngx_http_pairguard_policy_t**>(ngx_array_push(&mcf->policies));
        if (slot == nullptr) {
            return PG_CONF_ERROR;
        }
        *slot = p;
        return NGX_CONF_OK;
    } catch (const std::exception& e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", e.what());
        return PG_CONF_ERROR;
    }
}

char* ngx_http_pairguard(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<ngx_http_pairguard_loc_conf_t*>(conf);
    auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_pairguard_module));
    auto* value = static_cast<ngx_str_t*>(cf->args->elts);

    if (lcf->policies == nullptr) {
        lcf->policies = ngx_array_create(cf->pool, 2, sizeof(ngx_http_pairguard_policy_ref_t));
        if (lcf->policies == nullptr) {
            return PG_CONF_ERROR;
        }
    }
    auto* refs = static_cast<ngx_http_pairguard_policy_ref_t*>(lcf->policies->elts);
    for (ngx_uint_t i = 0; i < lcf->policies->nelts; i++) {
        if (refs[i].name.len == value[1].len && ngx_strncmp(refs[i].name.data, value[1].data, value[1].len) == 0) {
            return const_cast<char*>("is duplicate");
        }
    }
    auto* ref = static_cast<ngx_http_pairguard_policy_ref_t*>(ngx_array_push(lcf->policies));
    if (ref == nullptr) {
        return PG_CONF_ERROR;
    }
    ref->name = value[1];
    ref->policy = nullptr;  // resolved at merge, when every policy is known
    ref->file = cf->conf_file->file.name.data;
    ref->line = cf->conf_file->line;
    mcf->used = 1;
    return NGX_CONF_OK;
}

char* ngx_http_pairguard_status_list(ngx_conf_t* cf, ngx_command_t* cmd, void* conf) noexcept {
    auto** list = reinterpret_cast<ngx_array_t**>(static_cast<char*>(conf) + cmd->offset);
    if (*list != nullptr) {
        return const_cast<char*>("is duplicate");
    }
    auto* value = static_cast<ngx_str_t*>(cf->args->elts);
    *list = ngx_array_create(cf->pool, cf->args->nelts, sizeof(int));
    if (*list == nullptr) {
        return PG_CONF_ERROR;
    }
    for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
        if (cmd->offset == offsetof(ngx_http_pairguard_loc_conf_t, neutral_status) && value[i].len == 4
            && ngx_strncmp(value[i].data, "none", 4) == 0) {
            continue;
        }
        ngx_int_t code = ngx_atoi(value[i].data, value[i].len);
        if (code < 100 || code > 599) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid status \"%V\"", &value[i]);
            return PG_CONF_ERROR;
        }
        auto* slot = static_cast<int*>(ngx_array_push(*list));
        if (slot == nullptr) {
            return PG_CONF_ERROR;
        }
        *slot = static_cast<int>(code);
    }
    return NGX_CONF_OK;
}

char* ngx_http_pairguard_deny_status(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<ngx_http_pairguard_loc_conf_t*>(conf);
    if (lcf->deny_status != NGX_CONF_UNSET_UINT) {
        return const_cast<char*>("is duplicate");
    }
    auto* value = static_cast<ngx_str_t*>(cf->args->elts);
    ngx_int_t code = ngx_atoi(value[1].data, value[1].len);
    if (code < 400 || code > 599) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid status \"%V\": must be between 400 and 599", &value[1]);
        return PG_CONF_ERROR;
    }
    lcf->deny_status = static_cast<ngx_uint_t>(code);
    return NGX_CONF_OK;
}

char* ngx_http_pairguard_pairing_policy(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    try {
        auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(conf);
        if (mcf->pairing != nullptr) {
            return const_cast<char*>("is duplicate");
        }
        auto* value = static_cast<ngx_str_t*>(cf->args->elts);
        std::vector<std::string_view> args;
        for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
            args.push_back(view(value[i]));
        }
        pairguard::PairingLimits limits;
        std::string err = pairguard::parse_pairing_policy_args(args, limits);
        if (!err.empty()) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", err.c_str());
            return PG_CONF_ERROR;
        }
        mcf->pairing = ngx_pairguard_pool_new<pairguard::PairingLimits>(cf->pool, std::move(limits));
        return mcf->pairing ? NGX_CONF_OK : PG_CONF_ERROR;
    } catch (const std::exception& e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", e.what());
        return PG_CONF_ERROR;
    }
}

char* ngx_http_pairguard_pairing(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<ngx_http_pairguard_loc_conf_t*>(conf);
    auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_pairguard_module));
    if (lcf->pairing_op != 0) {
        return const_cast<char*>("is duplicate");
    }
    ngx_str_t* value = static_cast<ngx_str_t*>(cf->args->elts);
    static const struct {
        const char* name;
        ngx_uint_t op;
    } ops[] = {{"request", NGX_HTTP_PAIRGUARD_PAIRING_REQUEST},
               {"approve", NGX_HTTP_PAIRGUARD_PAIRING_APPROVE},
               {"pending", NGX_HTTP_PAIRGUARD_PAIRING_PENDING},
               {"approved", NGX_HTTP_PAIRGUARD_PAIRING_APPROVED}};
    for (const auto& op : ops) {
        if (view(value[1]) == op.name) {
            lcf->pairing_op = op.op;
        }
    }
    if (lcf->pairing_op == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid value \"%V\": request, approve, pending or approved",
                           &value[1]);
        return PG_CONF_ERROR;
    }
    // Platform names come from configuration, so that strangers cannot make
    // Redis hold state for names they invent, and listings cover a bounded set.
    if (mcf->pairing == nullptr || mcf->pairing->platforms.empty()) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"pairguard_pairing\" needs \"pairguard_pairing_policy ... platforms=NAME,...\" "
                           "earlier in the http block");
        return PG_CONF_ERROR;
    }
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    clcf->handler = ngx_http_pairguard_pairing_handler;
    mcf->used = 1;
    mcf->pairing_used = 1;
    return NGX_CONF_OK;
}

char* ngx_http_pairguard_require_paired(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    try {
        auto* lcf = static_cast<ngx_http_pairguard_loc_conf_t*>(conf);
        auto* mcf =
            static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_pairguard_module));
        if (lcf->paired_platform != nullptr) {
            return const_cast<char*>("is duplicate");
        }
        auto* value = static_cast<ngx_str_t*>(cf->args->elts);
        ngx_array_t* platform = nullptr;
        ngx_array_t* user = nullptr;
        for (ngx_uint_t i = 1; i < cf->args->nelts; i++) {
            std::string_view arg = view(value[i]);
            ngx_array_t** target = nullptr;
            std::string_view text;
            if (arg.rfind("platform=", 0) == 0) {
                target = &platform;
                text = arg.substr(9);
            } else if (arg.rfind("user=", 0) == 0) {
                target = &user;
                text = arg.substr(5);
            }
            if (target == nullptr || *target != nullptr || text.empty()) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"", &value[i]);
                return PG_CONF_ERROR;
            }
            *target = static_cast<ngx_array_t*>(ngx_pcalloc(cf->pool, sizeof(ngx_array_t)));
            bool uses_body = false;
            std::string err;
            if (*target == nullptr || ngx_http_pairguard_compile_key(cf, text, *target, &uses_body, err) != NGX_OK) {
                if (!err.empty()) {
                    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s in \"%V\"", err.c_str(), &value[i]);
                }
                return PG_CONF_ERROR;
            }
            if (uses_body) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "$pairguard_body_* cannot be used in \"%V\"", &value[i]);
                return PG_CONF_ERROR;
            }
        }
        if (platform == nullptr || user == nullptr) {
            return const_cast<char*>("needs both \"platform=\" and \"user=\"");
        }
        lcf->paired_platform = platform;
        lcf->paired_user = user;
        mcf->used = 1;
        mcf->pairing_used = 1;
        return NGX_CONF_OK;
    } catch (const std::exception& e) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", e.what());
        return PG_CONF_ERROR;
    }
}

char* ngx_http_pairguard_client_prefix(ngx_conf_t* cf, ngx_command_t*, void* conf) noexcept {
    auto* lcf = static_cast<ngx_http_pairguard_loc_conf_t*>(conf);
    if (lcf->client_v4_bits != NGX_CONF_UNSET_UINT) {
        return const_cast<char*>("is duplicate");
    }
    auto* value = static_cast<ngx_str_t*>(cf->args->elts);
    ngx_int_t v4 = ngx_atoi(value[1].data, value[1].len);
    ngx_int_t v6 = ngx_atoi(value[2].data, value[2].len);
    if (v4 < 1 || v4 > 32) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid IPv4 prefix \"%V\": must be 1 to 32", &value[1]);
        return PG_CONF_ERROR;
    }
    if (v6 < 1 || v6 > 128) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid IPv6 prefix \"%V\": must be 1 to 128", &value[2]);
        return PG_CONF_ERROR;
    }
    lcf->client_v4_bits = static_cast<ngx_uint_t>(v4);
    lcf->client_v6_bits = static_cast<ngx_uint_t>(v6);
    return NGX_CONF_OK;
}

void* ngx_http_pairguard_create_main_conf(ngx_conf_t* cf) noexcept {
    auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(ngx_pcalloc(cf->pool, sizeof(ngx_http_pairguard_main_conf_t)));
    if (mcf == nullptr) {
        return nullptr;
    }
    if (ngx_array_init(&mcf->policies, cf->pool, 4, sizeof(ngx_http_pairguard_policy_t*)) != NGX_OK) {
        return nullptr;
    }
    mcf->store_down = NGX_CONF_UNSET_UINT;
    mcf->zone_size = NGX_CONF_UNSET_SIZE;
    mcf->events_log = NGX_CONF_UNSET;
    return mcf;
}

char* ngx_http_pairguard_init_main_conf(ngx_conf_t* cf, void* conf) noexcept {
    auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(conf);
    ngx_conf_init_uint_value(mcf->store_down, NGX_HTTP_PAIRGUARD_DOWN_LOCAL);
    ngx_conf_init_size_value(mcf->zone_size, 1024 * 1024);
    ngx_conf_init_value(mcf->events_log, 0);
    if (mcf->prefix.len == 0) {
        ngx_str_set(&mcf->prefix, "pairguard:");
    }
    if (mcf->zone_size < 8 * ngx_pagesize) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "pairguard_zone \"%uz\" is too small", mcf->zone_size);
        return PG_CONF_ERROR;
    }
    if (mcf->pairing == nullptr) {
        try {
            mcf->pairing = ngx_pairguard_pool_new<pairguard::PairingLimits>(cf->pool);
        } catch (const std::exception&) {
            mcf->pairing = nullptr;
        }
        if (mcf->pairing == nullptr) {
            return PG_CONF_ERROR;
        }
    }
    if (mcf->redis != nullptr) {
        static const char* modes[] = {"local", "deny", "allow"};
        mcf->redis->down_mode = modes[mcf->store_down];
    }
    return NGX_CONF_OK;
}

void* ngx_http_pairguard_create_loc_conf(ngx_conf_t* cf) noexcept {
    auto* lcf = static_cast<ngx_http_pairguard_loc_conf_t*>(ngx_pcalloc(cf->pool, sizeof(ngx_http_pairguard_loc_conf_t)));
    if (lcf == nullptr) {
        return nullptr;
    }
    // policies, failure_status, neutral_status: nullptr = not set here
    lcf->deny_status = NGX_CONF_UNSET_UINT;
    lcf->client_v4_bits = NGX_CONF_UNSET_UINT;
    lcf->client_v6_bits = NGX_CONF_UNSET_UINT;
    lcf->dry_run = NGX_CONF_UNSET;
    lcf->auth_require = NGX_CONF_UNSET;
    return lcf;
}

// nginx answers 413 for a Content-Length past client_max_body_size when it
// picks the location, before any phase handler runs: an `error_page 413`
// of a guarded location sends such a request on (to a location that may
// reach the application) with nothing counted. Said at `nginx -t`, once per
// location; a body whose size shows only while it is read (chunked, HTTP/2
// without a length) is the guard's own read, which takes no error_page.
void warn_early_error_pages(ngx_conf_t* cf, const ngx_http_pairguard_loc_conf_t* conf) {
    if (conf->policies == nullptr || conf->policies->nelts == 0) {
        return;
    }
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    if (clcf == nullptr || clcf->error_pages == nullptr || clcf->name.len == 0) {
        return;
    }
    auto* pages = static_cast<ngx_http_err_page_t*>(clcf->error_pages->elts);
    for (ngx_uint_t i = 0; i < clcf->error_pages->nelts; i++) {
        if (pages[i].status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
            ngx_log_error(NGX_LOG_WARN, cf->log, 0,
                          "pairguard: \"error_page 413\" in guarded location \"%V\": nginx answers a Content-Length "
                          "past client_max_body_size before the guard runs, so such a request goes to that page "
                          "uncounted; the page must not reach the application unguarded",
                          &clcf->name);
            return;
        }
    }
}

char* ngx_http_pairguard_merge_loc_conf(ngx_conf_t* cf, void* parent, void* child) noexcept {
    auto* prev = static_cast<ngx_http_pairguard_loc_conf_t*>(parent);
    auto* conf = static_cast<ngx_http_pairguard_loc_conf_t*>(child);
    auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_pairguard_module));

    if (conf->policies == nullptr) {
        conf->policies = prev->policies;
    }
    if (conf->failure_status == nullptr) {
        conf->failure_status = prev->failure_status;
    }
    if (conf->failure_status == nullptr) {
        conf->failure_status = ngx_array_create(cf->pool, 3, sizeof(int));
        if (conf->failure_status == nullptr) {
            return PG_CONF_ERROR;
        }
        for (int code : {401, 403, 404}) {
            *static_cast<int*>(ngx_array_push(conf->failure_status)) = code;
        }
    }
    if (conf->neutral_status == nullptr) {
        conf->neutral_status = prev->neutral_status;
    }
    if (conf->paired_platform == nullptr) {
        conf->paired_platform = prev->paired_platform;
        conf->paired_user = prev->paired_user;
    }
    ngx_conf_merge_uint_value(conf->deny_status, prev->deny_status, NGX_HTTP_TOO_MANY_REQUESTS);
    ngx_conf_merge_uint_value(conf->client_v4_bits, prev->client_v4_bits, 32);
    ngx_conf_merge_uint_value(conf->client_v6_bits, prev->client_v6_bits, 64);
    ngx_conf_merge_value(conf->dry_run, prev->dry_run, 0);
    ngx_conf_merge_value(conf->auth_require, prev->auth_require, 0);

    conf->uses_body = false;
    if (conf->policies != nullptr) {
        auto* refs = static_cast<ngx_http_pairguard_policy_ref_t*>(conf->policies->elts);
        auto** all = static_cast<ngx_http_pairguard_policy_t**>(mcf->policies.elts);
        for (ngx_uint_t i = 0; i < conf->policies->nelts; i++) {
            for (ngx_uint_t j = 0; refs[i].policy == nullptr && j < mcf->policies.nelts; j++) {
                if (all[j]->name.len == refs[i].name.len
                    && ngx_strncmp(all[j]->name.data, refs[i].name.data, refs[i].name.len) == 0) {
                    refs[i].policy = all[j];
                }
            }
            if (refs[i].policy == nullptr) {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "unknown pairguard policy \"%V\" in %s:%ui", &refs[i].name,
                              refs[i].file, refs[i].line);
                return PG_CONF_ERROR;
            }
            conf->uses_body = conf->uses_body || refs[i].policy->uses_body;
        }
    }
    warn_early_error_pages(cf, conf);
    return NGX_CONF_OK;
}

ngx_int_t ngx_http_pairguard_preconfiguration(ngx_conf_t* cf) noexcept {
    return ngx_http_pairguard_add_variables(cf);
}

// Authentication first (an unauthenticated request costs nothing), then the
// paired check (an unpaired request reserves no attempt), then the guard.
ngx_int_t ngx_http_pairguard_preaccess(ngx_http_request_t* r) noexcept {
    if (r != r->main || r->upstream != nullptr) {
        // a subrequest, before it can send anything anywhere; or a request
        // proxied in an earlier location, entering another one whose
        // handler may send it elsewhere
        ngx_http_pairguard_note_carried_on(r);
    }
    ngx_int_t rc = ngx_http_pairguard_auth_access(r);
    if (rc != NGX_DECLINED) {
        return rc;
    }
    rc = ngx_http_pairguard_paired_handler(r);
    if (rc != NGX_DECLINED) {
        return rc;
    }
    return ngx_http_pairguard_guard_access(r);
}

ngx_int_t ngx_http_pairguard_postconfiguration(ngx_conf_t* cf) noexcept {
    auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_pairguard_module));
    if (!mcf->used) {
        return NGX_OK;
    }
    if (!mcf->redis_set) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "pairguard is used but \"pairguard_redis\" is not set");
        return NGX_ERROR;
    }
    // the http block's resolver, when it has one: Redis names are looked up
    // again at every reconnection (a managed endpoint that moves is followed)
    auto* clcf = static_cast<ngx_http_core_loc_conf_t*>(ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module));
    if (clcf->resolver != nullptr && clcf->resolver->connections.nelts > 0) {
        mcf->redis->resolver = clcf->resolver;
        if (clcf->resolver_timeout != NGX_CONF_UNSET_MSEC) {
            mcf->redis->resolver_timeout = clcf->resolver_timeout;
        }
    } else if (!mcf->redis->unresolved.empty()) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "pairguard_redis: host not found in \"%s\" (and no \"resolver\" in the http block)",
                      mcf->redis->unresolved.c_str());
        return NGX_ERROR;
    }
    if (mcf->keys == nullptr) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "pairguard is used but \"pairguard_secret_file\" is not set");
        return NGX_ERROR;
    }

    ngx_str_t name = ngx_string("pairguard");
    mcf->shm_zone = ngx_shared_memory_add(cf, &name, static_cast<size_t>(mcf->zone_size), &ngx_http_pairguard_module);
    if (mcf->shm_zone == nullptr) {
        return NGX_ERROR;
    }
    mcf->shm_zone->init = ngx_http_pairguard_init_zone;
    mcf->shm_zone->data = mcf;

    try {
        // compute the script digests now, not on a worker's first request
        (void) pairguard::guard_batch_script();
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0, "pairguard: %s", e.what());
        return NGX_ERROR;
    }
    if (ngx_http_pairguard_init_guard(cf) != NGX_OK || ngx_http_pairguard_init_request(cf) != NGX_OK
        || ngx_http_pairguard_auth_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    // One PREACCESS handler, placed first in the array: nginx runs a phase's
    // handlers last-registered first, so it runs after every other one,
    // realip's location-level handler included. Until then no variable the
    // keys use is evaluated (and cached) with the proxy's address.
    auto* cmcf = static_cast<ngx_http_core_main_conf_t*>(ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module));
    ngx_array_t* handlers = &cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers;
    if (ngx_array_push(handlers) == nullptr) {
        return NGX_ERROR;
    }
    auto* h = static_cast<ngx_http_handler_pt*>(handlers->elts);
    ngx_memmove(h + 1, h, (handlers->nelts - 1) * sizeof(ngx_http_handler_pt));
    h[0] = ngx_http_pairguard_preaccess;

    // One PRECONTENT handler, pushed last so that it runs before try_files
    // and mirror: a request that gets there passed the location's access
    // phase (allow/deny, auth_basic, auth_request)
    auto* pre = static_cast<ngx_http_handler_pt*>(ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers));
    if (pre == nullptr) {
        return NGX_ERROR;
    }
    *pre = ngx_http_pairguard_guard_precontent;
    return NGX_OK;
}

ngx_int_t ngx_http_pairguard_init_process(ngx_cycle_t* cycle) noexcept {
    if (ngx_process != NGX_PROCESS_WORKER && ngx_process != NGX_PROCESS_SINGLE) {
        return NGX_OK;
    }
    auto* mcf = static_cast<ngx_http_pairguard_main_conf_t*>(ngx_http_cycle_get_module_main_conf(cycle, ngx_http_pairguard_module));
    if (mcf == nullptr || !mcf->used || mcf->redis == nullptr) {
        return NGX_OK;
    }
    try {
        worker_store = std::make_unique<ngx_pairguard_redis_t>(*mcf->redis);
        worker_store->start();

        // approvals, revocations and unlocks made anywhere reach this worker
        ngx_shm_zone_t* zone = mcf->shm_zone;
        worker_events = std::make_unique<ngx_pairguard_redis_t>(*mcf->redis);
        // pairguard_events_log: every worker hears every event; only worker 0
        // (the one process in single-process mode) logs it, so each event is
        // one line per node. Events published while its subscription is down
        // are not logged (the stream keeps them: pairguardctl events).
        bool log_events = mcf->events_log != 0 && ngx_worker == 0;
        ngx_log_t* log = cycle->log;
        worker_events->subscribe(
            pairguard::events_channel(view(mcf->prefix)),
            [zone, log_events, log](std::string_view message) {
                ngx_http_pairguard_pairing_event(zone, message);
                ngx_http_pairguard_auth_event(message);
                if (log_events) {
                    // anyone can make events (wrong guesses lock keys they
                    // choose): at most kEventsLogRate lines a second, and a
                    // count of what was left out
                    static constexpr ngx_uint_t kEventsLogRate = 20;
                    static time_t second = 0;
                    static ngx_uint_t logged = 0, skipped = 0;
                    try {
                        ngx_time_t* tp = ngx_timeofday();
                        if (tp->sec != second) {
                            if (skipped > 0) {
                                ngx_log_error(NGX_LOG_NOTICE, log, 0,
                                              "pairguard: %ui events not logged (more than %ui a second)", skipped,
                                              kEventsLogRate);
                            }
                            second = tp->sec;
                            logged = skipped = 0;
                        }
                        if (logged >= kEventsLogRate) {
                            skipped++;
                        } else if (auto json = pairguard::event_json(message, int64_t(tp->sec) * 1000 + tp->msec)) {
                            logged++;
                            ngx_log_error(NGX_LOG_NOTICE, log, 0, "pairguard: event %*s", json->size(), json->data());
                        }
                    } catch (const std::exception&) {
                    }
                }
            },
            [] {
                ngx_http_pairguard_pairing_resync();
                ngx_http_pairguard_auth_resync();
            });
        worker_events->start();
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, 0, "pairguard: %s", e.what());
        return NGX_ERROR;
    }
    return NGX_OK;
}

void ngx_http_pairguard_exit_process(ngx_cycle_t*) noexcept {
    ngx_http_pairguard_batch_exit();
    if (worker_events) {
        worker_events->stop();
        worker_events.reset();
    }
    if (worker_store) {
        worker_store->stop();
        worker_store.reset();
    }
}

}  // namespace
