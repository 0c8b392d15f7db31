// What the endpoints (pairing, auth) share: hiredis replies as the core's
// Reply trees and store calls bound to a request
// (cancelled by its context's pool cleanup if the request goes first).

#include <algorithm>

#include "ngx_http_pairguard.h"

pairguard::Reply ngx_http_pairguard_reply(const redisReply* r) {
    using pairguard::Reply;
    if (r == nullptr) {
        return Reply::nil_reply();
    }
    switch (r->type) {
    case REDIS_REPLY_INTEGER:
        return Reply::of_integer(r->integer);
    case REDIS_REPLY_STRING:
        return Reply::of_string(std::string(r->str, r->len));
    case REDIS_REPLY_STATUS: {
        Reply s = Reply::of_string(std::string(r->str, r->len));
        s.type = Reply::Type::status;
        return s;
    }
    case REDIS_REPLY_ERROR:
        return Reply::of_error(std::string(r->str, r->len));
    case REDIS_REPLY_ARRAY: {
        std::vector<Reply> e;
        e.reserve(r->elements);
        for (size_t i = 0; i < r->elements; i++) {
            e.push_back(ngx_http_pairguard_reply(r->element[i]));
        }
        return Reply::of_array(std::move(e));
    }
    default:
        return Reply::nil_reply();
    }
}

bool ngx_http_pairguard_call(ngx_http_pairguard_ctx_t* ctx, const pairguard::StoreCall& sc,
                             ngx_http_pairguard_reply_fn done) {
    ngx_pairguard_redis_t* store = ngx_http_pairguard_store();
    if (store == nullptr || sc.script == nullptr) {
        return false;
    }
    auto slot = std::make_shared<ngx_pairguard_redis_command_t*>(nullptr);
    ngx_pairguard_redis_command_t* cmd = store->eval(
        *sc.script, sc.keys, sc.args,
        [ctx, slot, done = std::move(done)](ngx_pairguard_redis_result_e res, redisReply* reply) {
            auto& calls = ctx->calls;
            calls.erase(std::remove(calls.begin(), calls.end(), *slot), calls.end());
            bool ok = res == ngx_pairguard_redis_result_e::ok;
            done(ok, ok ? ngx_http_pairguard_reply(reply) : pairguard::Reply::nil_reply());
        });
    if (cmd == nullptr) {
        return false;
    }
    *slot = cmd;
    ctx->calls.push_back(cmd);
    return true;
}
