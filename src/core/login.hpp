// The login decisions of SPEC section 4, without nginx: for each login
// method, which store calls to make, which counters a failure bumps, when
// fake credentials stand in for real ones, and what the caller is answered.
//
// A Flow is a small state machine that the nginx glue pumps: start() gives
// the first Step; a Step either asks for store calls (run them all, then
// give the replies to stored()), asks for an Argon2id check off the event
// loop (run it, then give the result to hashed()), or is the answer. Every
// Step may carry notice lines for the error log (never a secret).
//
// The rules the flows hold to (README "Authentication at the edge"):
// - Known and unknown users get the same answers and the same work:
//   a dummy Argon2id hash, fake SCRAM credentials derived from the secret,
//   dummy public keys verified like a real one (run_signature_work).
// - A Haystack exchange shows a user's real salt and iteration count
//   whenever the user has SCRAM credentials, locked, revoked or not: a lock
//   makes the exchange fail at the proof, never changes what it shows.
// - A failed proof bumps the user's and the address's failure counters
//   (make_user_failure, make_address_failure) and answers like a wrong
//   password; a locked caller is answered the same without a proof check.
// - Unauthenticated steps that store state (challenge, Haystack
//   client-first) spend the address's starts (make_address_start); past
//   policy.max_pending they answer as usual but store nothing, so the
//   exchange fails at its end. HELLO stores nothing at all. A successful
//   login gives the address its starts back.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth_store.hpp"
#include "password.hpp"
#include "scram.hpp"

namespace pairguard::login {

// What a flow knows of its request.
struct Request {
    const KeyDeriver* keys = nullptr;
    std::string prefix;
    const AuthPolicy* policy = nullptr;
    std::string address;  // the client address ($remote_addr)
    std::string host;     // $host (verify)
    bool tls = false;     // Haystack PLAINTEXT
    int64_t now_ms = 0;   // Unix ms
};

struct Answer {
    int status = 500;
    std::string body;  // JSON; empty: a bare status (docHaystack/Auth failures)
    std::vector<std::pair<std::string, std::string>> headers;
};

// Argon2id work for the thread pool: verify_password(stored, password), or
// verify_password_dummy(password, params) when `stored` is empty; on a match
// with needs_rehash(stored, params), also hash_password(password, params).
struct PasswordWork {
    std::string stored;
    std::string password;  // the glue wipes it once used
    Argon2Params params;
};

struct PasswordResult {
    bool failed = false;  // resources (an exception in the thread)
    PasswordCheck check = PasswordCheck::mismatch;
    std::string rehash;  // a new hash for the store, or empty
};

struct Step {
    enum class Kind { store, password, answer };
    Kind kind = Kind::answer;
    std::vector<StoreCall> calls;  // store: made at once; replies in this order
    PasswordWork work;             // password
    Answer answer;                 // answer
    std::vector<std::string> notices;
};

class Flow {
public:
    virtual ~Flow();
    Flow() = default;
    Flow(const Flow&) = delete;
    Flow& operator=(const Flow&) = delete;

    Step start();
    // After a store step: ok=false when any call failed (Redis unreachable).
    Step stored(bool ok, const std::vector<Reply>& replies);
    // After a password step.
    Step hashed(const PasswordResult& result);

    using StoreNext = std::function<Step(bool ok, const std::vector<Reply>& replies)>;
    using HashNext = std::function<Step(const PasswordResult& result)>;

protected:
    virtual Step begin() = 0;
    Step store(std::vector<StoreCall> calls, StoreNext next);
    Step check_password(PasswordWork work, HashNext next);

private:
    StoreNext on_stored_;
    HashNext on_hashed_;
};

// POST {"user","password"} (pairguard_auth password).
std::unique_ptr<Flow> password_login(Request req, std::string_view body);
// POST {"user"} (pairguard_auth challenge).
std::unique_ptr<Flow> challenge(Request req, std::string_view body);
// POST {"user","signature"} (pairguard_auth verify).
std::unique_ptr<Flow> verify(Request req, std::string_view body);
// HELLO, SCRAM or PLAINTEXT of pairguard_auth haystack (not BEARER: a session
// check, not a login).
std::unique_ptr<Flow> haystack_exchange(Request req, const haystack::Authorization& auth);

// ---- the signature check of verify, the same work for every caller ----

// What verify checks a signature with. For a user without a usable key
// (unknown, key-less, revoked) the key is a dummy of the module's own, and
// a match never counts; the seeds are the user's live challenges either
// way (an unknown user's challenges live like a known one's).
struct SignatureWork {
    std::string key_pem;
    bool real = false;
    std::vector<std::string> seeds, nonces;
};
SignatureWork plan_signature_work(const KeyDeriver& keys, const ChallengeState& state, std::string_view user);

struct SignatureOutcome {
    std::optional<size_t> matched;  // the seed, when `real`
    size_t keys_parsed = 0;         // PEM parses done
    size_t verifications = 0;       // signature checks done
};
// Parses the plan's key and one dummy key of the other type (Ed25519 /
// ECDSA P-256), and checks the signature against every nonce with both: the
// same number of parses and checks of each key type whoever the user is.
SignatureOutcome run_signature_work(const SignatureWork& work, std::string_view host, std::string_view user,
                                    std::string_view signature_b64);

// The dummy public keys (SPKI PEM). Nobody needs their private halves: a
// match with them is never a login.
const std::string& dummy_ed25519_pem();
const std::string& dummy_ecdsa_pem();

}  // namespace pairguard::login
