// The guard's batch layer: every reserve and settle a worker produces in one
// event-loop iteration goes to Redis as one guard_batch.lua call (one write,
// one reply), walked in order so that the answers are those of separate
// calls. It sits above the Redis connection: a request alone is sent at the
// end of the same iteration, never delayed.

#include "../core/pairing.hpp"
#include "ngx_http_pairguard.h"

struct ngx_http_pairguard_batch_op_t {
    pairguard::GuardOp op;
    ngx_http_pairguard_batch_fn done;  // empty once cancelled
};

namespace {

using op_ptr = std::shared_ptr<ngx_http_pairguard_batch_op_t>;

struct batcher_t {
    std::vector<op_ptr> queue;
    ngx_event_t ev;
    bool ready = false;
};

batcher_t batcher;  // per worker

void fail_all(std::vector<op_ptr>& ops) noexcept {
    static const std::vector<int64_t> none;
    for (auto& o : ops) {
        if (o->done) {
            auto done = std::move(o->done);
            o->done = nullptr;
            try {
                done(false, none);
            } catch (const std::exception& e) {
                ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: %s", e.what());
            }
        }
    }
}

void on_reply(const std::vector<op_ptr>& ops, ngx_pairguard_redis_result_e res, redisReply* reply) noexcept {
    std::vector<std::vector<int64_t>> replies;
    bool ok = false;
    try {
        ok = res == ngx_pairguard_redis_result_e::ok
             && pairguard::decode_guard_batch(ngx_http_pairguard_reply(reply), ops.size(), replies);
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: %s", e.what());
    }
    static const std::vector<int64_t> none;
    for (size_t i = 0; i < ops.size(); i++) {
        if (!ops[i]->done) {
            continue;  // its request went away
        }
        auto done = std::move(ops[i]->done);
        ops[i]->done = nullptr;
        try {
            done(ok, ok ? replies[i] : none);
        } catch (const std::exception& e) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: %s", e.what());
        }
    }
}

void flush(ngx_event_t*) noexcept {
    if (batcher.queue.empty()) {
        return;
    }
    // every operation's `done` runs once, whatever happens here: a reserve
    // that never heard back would leave its request without a timer
    std::shared_ptr<std::vector<op_ptr>> ops;
    try {
        ops = std::make_shared<std::vector<op_ptr>>();
    } catch (const std::exception&) {
        fail_all(batcher.queue);
        batcher.queue.clear();
        return;
    }
    ops->swap(batcher.queue);
    try {
        ngx_pairguard_redis_t* store = ngx_http_pairguard_store();
        if (store == nullptr || !store->accepting()) {
            fail_all(*ops);
            return;
        }
        std::vector<const pairguard::GuardOp*> list;
        list.reserve(ops->size());
        for (const auto& o : *ops) {
            list.push_back(&o->op);
        }
        pairguard::RespArgs call = pairguard::make_guard_batch(list.data(), list.size(), pairguard::kReservationHoldMs);
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0, "pairguard: batch of %uz operations", list.size());
        ngx_pairguard_redis_command_t* cmd =
            store->eval(pairguard::guard_batch_script(), std::move(call),
                        [ops](ngx_pairguard_redis_result_e res, redisReply* reply) { on_reply(*ops, res, reply); });
        if (cmd == nullptr) {
            fail_all(*ops);
        }
    } catch (const std::exception& e) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0, "pairguard: %s", e.what());
        fail_all(*ops);
    }
}

}  // namespace

std::shared_ptr<ngx_http_pairguard_batch_op_t> ngx_http_pairguard_batch_submit(pairguard::GuardOp op,
                                                                                ngx_http_pairguard_batch_fn done) {
    if (!batcher.ready) {
        ngx_memzero(&batcher.ev, sizeof(batcher.ev));
        batcher.ev.handler = flush;
        batcher.ev.log = ngx_cycle->log;
        batcher.ev.data = &batcher;
        batcher.ready = true;
    }
    auto o = std::make_shared<ngx_http_pairguard_batch_op_t>();
    o->op = std::move(op);
    o->done = std::move(done);
    batcher.queue.push_back(o);
    if (!batcher.ev.posted) {
        ngx_post_event(&batcher.ev, &ngx_posted_events);
    }
    return o;
}

void ngx_http_pairguard_batch_cancel(ngx_http_pairguard_batch_op_t* op) noexcept {
    if (op != nullptr) {
        op->done = nullptr;
    }
}

void ngx_http_pairguard_batch_exit() noexcept {
    if (batcher.ready && batcher.ev.posted) {
        ngx_delete_posted_event(&batcher.ev);
    }
    batcher.queue.clear();
}
