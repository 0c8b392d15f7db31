// What the endpoints (pairing, auth) share: store calls bound to a request
// (cancelled by its context's pool cleanup if the request goes first).

#include <algorithm>

#include "ngx_http_pairguard.h"

bool ngx_http_pairguard_call(ngx_http_pairguard_ctx_t* ctx, const pairguard::StoreCall& sc,
                             ngx_http_pairguard_reply_fn done) {
    ngx_pairguard_redis_t* store = ngx_http_pairguard_store();
    if (store == nullptr || sc.script == nullptr) {
        return false;
    }
    auto slot = std::make_shared<ngx_pairguard_redis_command_t*>(nullptr);
    ngx_pairguard_redis_command_t* cmd = store->eval(
        *sc.script, sc.keys, sc.args,
        [ctx, slot, done = std::move(done)](ngx_pairguard_redis_result_e res, const pairguard::Reply& reply) {
            auto& calls = ctx->calls;
            calls.erase(std::remove(calls.begin(), calls.end(), *slot), calls.end());
            bool ok = res == ngx_pairguard_redis_result_e::ok;
            done(ok, reply);
        });
    if (cmd == nullptr) {
        return false;
    }
    *slot = cmd;
    ctx->calls.push_back(cmd);
    return true;
}
