// The login decisions (src/core/login.*) without nginx or Redis: each test
// pumps a flow by hand, checks which store calls it asks for, and feeds it
// the replies the scripts would give.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include <memory>

#include "encoding.hpp"
#include "login.hpp"
#include "session.hpp"
#include "signature.hpp"

using namespace pairguard;
using namespace pairguard::login;

namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef";
const std::string kPrefix = "pairguard:";
const int64_t kNow = 1'800'000'000'000;
const std::string kAddr = "192.0.2.7";

const KeyDeriver& keys() {
    static KeyDeriver k(kSecret);
    return k;
}

const AuthPolicy& policy() {
    static AuthPolicy p = [] {
        AuthPolicy a;
        a.argon2 = Argon2Params{8, 1, 1};  // tests only hash cheaply
        return a;
    }();
    return p;
}

Request request() {
    Request r;
    r.keys = &keys();
    r.prefix = kPrefix;
    r.policy = &policy();
    r.address = kAddr;
    r.host = "example.org";
    r.now_ms = kNow;
    return r;
}

Reply arr(std::vector<Reply> e) {
    return Reply::of_array(std::move(e));
}
Reply str(std::string s) {
    return Reply::of_string(std::move(s));
}
Reply num(int64_t v) {
    return Reply::of_integer(v);
}

std::string script_name(const StoreCall& c) {
    return std::string(c.script->name);
}

std::vector<std::string> names(const Step& s) {
    std::vector<std::string> out;
    for (const StoreCall& c : s.calls) {
        out.push_back(script_name(c));
    }
    return out;
}

using Names = std::vector<std::string>;

// auth_user_get's reply: {now, lock ms, failures, sessions, field, value, ...}
Reply user_reply(std::vector<std::pair<std::string, std::string>> fields, int64_t lock_ms = 0) {
    std::vector<Reply> e{num(kNow), num(lock_ms), num(0), num(0)};
    for (auto& [f, v] : fields) {
        e.push_back(str(f));
        e.push_back(str(v));
    }
    return arr(std::move(e));
}
Reply no_user(int64_t lock_ms = 0) {
    return user_reply({}, lock_ms);
}
Reply address_start(int64_t lock_ms, bool allowed) {
    return arr({num(lock_ms), num(allowed ? 1 : 0)});
}

const std::string kPassword = "correct horse";

const std::string& argon2_hash() {
    static std::string h = hash_password(kPassword, policy().argon2);
    return h;
}

// What the glue's thread does with a password step.
PasswordResult run_password(const PasswordWork& w) {
    PasswordResult r;
    r.check = w.stored.empty() ? verify_password_dummy(w.password, w.params) : verify_password(w.stored, w.password);
    if (r.check == PasswordCheck::ok && needs_rehash(w.stored, w.params)) {
        r.rehash = hash_password(w.password, w.params);
    }
    return r;
}

std::string body(const std::string& user, const std::string& field = "", const std::string& value = "") {
    std::string b = "{\"user\":\"" + user + "\"";
    if (!field.empty()) {
        b += ",\"" + field + "\":\"" + value + "\"";
    }
    return b + "}";
}

// A failure step: the address's counter; unless the address was locked
// already, then the user's. `flow` is left at the user's counter.
void expect_failure_step(const Step& s, const std::string& user, Flow* flow = nullptr) {
    ASSERT_EQ(s.kind, Step::Kind::store);
    ASSERT_EQ(names(s), Names{"auth_failure"});
    EXPECT_EQ(s.calls[0].keys, make_address_failure(keys(), kPrefix, kAddr, policy()).keys);
    if (flow != nullptr) {
        Step u = flow->stored(true, {num(0)});
        ASSERT_EQ(names(u), Names{"auth_failure"});
        EXPECT_EQ(u.calls[0].keys, make_user_failure(keys(), kPrefix, user, policy()).keys);
    }
}

// ---- SCRAM client side, for the Haystack flows ----

std::string hmac256(std::string_view key, std::string_view data) {
    unsigned char out[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
         data.size(), out, &len);
    return std::string(reinterpret_cast<char*>(out), len);
}

std::string sha256(std::string_view data) {
    unsigned char out[32];
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
    return std::string(reinterpret_cast<char*>(out), 32);
}

struct ServerFirst {
    std::string nonce, salt_b64;
    uint32_t iterations = 0;
    std::string text;
};

ServerFirst parse_server_first(const std::string& www_authenticate) {
    auto h = parse_auth_header(www_authenticate);
    EXPECT_TRUE(h.has_value());
    std::string sf;
    EXPECT_TRUE(h && h->param("data") && base64_decode_lenient(*h->param("data"), sf));
    ServerFirst out;
    out.text = sf;
    size_t r = sf.find("r="), s = sf.find(",s="), i = sf.find(",i=");
    out.nonce = sf.substr(r + 2, s - r - 2);
    out.salt_b64 = sf.substr(s + 3, i - s - 3);
    out.iterations = static_cast<uint32_t>(std::stoul(sf.substr(i + 3)));
    return out;
}

std::string client_final(const std::string& password, const std::string& first_bare, const ServerFirst& sf) {
    std::string salt;
    EXPECT_TRUE(base64_decode_lenient(sf.salt_b64, salt));
    std::string salted(32, '\0');
    PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                      reinterpret_cast<const unsigned char*>(salt.data()), static_cast<int>(salt.size()),
                      static_cast<int>(sf.iterations), EVP_sha256(), 32, reinterpret_cast<unsigned char*>(salted.data()));
    std::string client_key = hmac256(salted, "Client Key");
    std::string without = "c=biws,r=" + sf.nonce;
    std::string auth_message = first_bare + "," + sf.text + "," + without;
    std::string sig = hmac256(sha256(client_key), auth_message);
    std::string proof(32, '\0');
    for (size_t i = 0; i < 32; i++) {
        proof[i] = static_cast<char>(client_key[i] ^ sig[i]);
    }
    return without + ",p=" + base64(proof);
}

const std::string& scram_text() {
    static std::string t = scram::format_credentials(scram::new_credentials(kPassword));
    return t;
}

haystack::Authorization hello(const std::string& user) {
    haystack::Authorization a;
    a.kind = haystack::Kind::hello;
    a.user = user;
    return a;
}

haystack::Authorization scram_step(const std::string& token, const std::string& data) {
    haystack::Authorization a;
    a.kind = haystack::Kind::scram;
    a.handshake_token = token;
    a.data = data;
    return a;
}

std::string header(const Answer& a, const std::string& name) {
    for (const auto& [n, v] : a.headers) {
        if (n == name) {
            return v;
        }
    }
    return "";
}

std::string hello_token(const std::string& user) {
    auto f = haystack_exchange(request(), hello(user));
    Step s = f->start();
    EXPECT_EQ(s.kind, Step::Kind::answer);
    auto h = parse_auth_header(header(s.answer, "WWW-Authenticate"));
    return h && h->param("handshakeToken") ? *h->param("handshakeToken") : "";
}

struct FirstResult {
    Step step;           // after the lookups
    ServerFirst server;  // what the client was shown
    std::string bare;
};

// HELLO, then client-first with the given replies to its lookups.
FirstResult run_first(const std::string& token, const std::string& user, const Reply& user_get, const Reply& start) {
    FirstResult out;
    out.bare = "n=" + user + ",r=clientnonce";
    auto f = haystack_exchange(request(), scram_step(token, "n,," + out.bare));
    Step s = f->start();
    EXPECT_EQ(names(s), (Names{"auth_user_get", "auth_address_start"}));
    EXPECT_EQ(s.calls[1].keys, make_address_start(keys(), kPrefix, kAddr, policy()).keys);
    s = f->stored(true, {user_get, start});
    std::string www;
    if (s.kind == Step::Kind::store) {
        EXPECT_EQ(names(s), Names{"auth_handshake_put"});
        Step done = f->stored(true, {num(1)});
        www = header(done.answer, "WWW-Authenticate");
        EXPECT_EQ(done.answer.status, 401);
    } else {
        www = header(s.answer, "WWW-Authenticate");
    }
    out.step = std::move(s);
    out.server = parse_server_first(www);
    auto h = parse_auth_header(www);
    EXPECT_EQ(h && h->param("handshakeToken") ? *h->param("handshakeToken") : "", token)
        << "the HELLO token stays the exchange's token";
    return out;
}

}  // namespace

// ---- password ----------------------------------------------------------------

TEST(LoginPassword, KnownUserWithTheRightPasswordGetsASession) {
    auto f = password_login(request(), body("alice", "password", kPassword));
    Step s = f->start();
    ASSERT_EQ(names(s), (Names{"auth_user_get", "auth_lock_status"}));
    s = f->stored(true, {user_reply({{"name", "alice"}, {"argon2", argon2_hash()}}), num(0)});
    ASSERT_EQ(s.kind, Step::Kind::password);
    EXPECT_EQ(s.work.stored, argon2_hash());
    s = f->hashed(run_password(s.work));
    ASSERT_EQ(names(s), Names{"auth_session_create"});
    s = f->stored(true, {arr({num(1), num(kNow + 1000)})});
    ASSERT_EQ(names(s), Names{"auth_address_reset"}) << "a login gives the address its starts back";
    s = f->stored(true, {num(1)});
    ASSERT_EQ(s.kind, Step::Kind::answer);
    EXPECT_EQ(s.answer.status, 200);
    EXPECT_NE(s.answer.body.find("\"token\""), std::string::npos);
}

TEST(LoginPassword, UnknownUserIsCheckedAgainstTheDummyAndCountsAFailure) {
    auto f = password_login(request(), body("nobody", "password", kPassword));
    Step s = f->start();
    s = f->stored(true, {no_user(), num(0)});
    ASSERT_EQ(s.kind, Step::Kind::password);
    EXPECT_TRUE(s.work.stored.empty()) << "the dummy hash";
    EXPECT_EQ(s.work.params.m_kib, policy().argon2.m_kib);
    s = f->hashed(run_password(s.work));
    expect_failure_step(s, "nobody", f.get());
    s = f->stored(true, {num(0)});
    EXPECT_EQ(s.answer.status, 403);
    EXPECT_EQ(s.answer.body, "{\"error\":\"invalid_credentials\"}");
}

TEST(LoginPassword, WrongPasswordAnswersLikeAnUnknownUser) {
    auto f = password_login(request(), body("alice", "password", "wrong"));
    f->start();
    Step s = f->stored(true, {user_reply({{"name", "alice"}, {"argon2", argon2_hash()}}), num(0)});
    s = f->hashed(run_password(s.work));
    expect_failure_step(s, "alice", f.get());
    s = f->stored(true, {num(900000)});
    EXPECT_EQ(s.answer.status, 403);
    EXPECT_EQ(s.answer.body, "{\"error\":\"invalid_credentials\"}");
    bool logged = false;
    for (const auto& n : s.notices) {
        logged = logged || n == "auth lockout start, user, 900s";
    }
    EXPECT_TRUE(logged);
}

TEST(LoginPassword, AnAddressLockedMeanwhileCountsNoUserFailure) {
    // attempts in flight when the address's lock starts: no user counter
    // more, so an address makes at most max_failures of them per lockout
    auto f = password_login(request(), body("nobody", "password", "guess"));
    f->start();
    Step s = f->stored(true, {no_user(), num(0)});
    s = f->hashed(run_password(s.work));
    expect_failure_step(s, "nobody");
    s = f->stored(true, {num(-1)});
    ASSERT_EQ(s.kind, Step::Kind::answer);
    EXPECT_EQ(s.answer.status, 403);
    EXPECT_EQ(s.answer.body, "{\"error\":\"invalid_credentials\"}");
}

TEST(LoginPassword, RevokedUserIsCheckedAgainstTheDummy) {
    auto f = password_login(request(), body("alice", "password", kPassword));
    f->start();
    Step s = f->stored(true, {user_reply({{"name", "alice"}, {"argon2", argon2_hash()}, {"revoked", "{}"}}), num(0)});
    ASSERT_EQ(s.kind, Step::Kind::password);
    EXPECT_TRUE(s.work.stored.empty());
}

TEST(LoginPassword, LockedUserOrAddressIsRefusedWithoutHashingOrCounting) {
    for (int which = 0; which < 2; which++) {
        auto f = password_login(request(), body("alice", "password", kPassword));
        f->start();
        Reply u = user_reply({{"name", "alice"}, {"argon2", argon2_hash()}}, which == 0 ? 5000 : 0);
        Step s = f->stored(true, {u, num(which == 1 ? 5000 : 0)});
        ASSERT_EQ(s.kind, Step::Kind::answer);
        EXPECT_EQ(s.answer.status, 403);
        EXPECT_EQ(s.answer.body, "{\"error\":\"invalid_credentials\"}");
    }
}

TEST(LoginPassword, SessionRefusedMeanwhileCountsAFailure) {
    auto f = password_login(request(), body("alice", "password", kPassword));
    f->start();
    Step s = f->stored(true, {user_reply({{"name", "alice"}, {"argon2", argon2_hash()}}), num(0)});
    s = f->hashed(run_password(s.work));
    s = f->stored(true, {Reply::nil_reply()});  // auth_session_create refused (revoked meanwhile)
    expect_failure_step(s, "alice");
}

TEST(LoginPassword, StoreDownAndBadBodies) {
    auto f = password_login(request(), body("alice", "password", kPassword));
    f->start();
    EXPECT_EQ(f->stored(false, {}).answer.status, 503);
    EXPECT_EQ(password_login(request(), body("alice"))->start().answer.status, 400);
    EXPECT_EQ(password_login(request(), "not json")->start().answer.status, 400);
}

TEST(LoginPassword, PlaintextFollowsThePolicy) {
    haystack::Authorization a;
    a.kind = haystack::Kind::plaintext;
    a.user = "alice";
    a.password = kPassword;
    Step s = haystack_exchange(request(), a)->start();
    EXPECT_EQ(s.answer.status, 403) << "tls_only without TLS";
    EXPECT_TRUE(s.answer.body.empty());
    Request tls = request();
    tls.tls = true;
    s = haystack_exchange(tls, a)->start();
    EXPECT_EQ(names(s), (Names{"auth_user_get", "auth_lock_status"}));
}

// ---- Haystack SCRAM ----------------------------------------------------------------

TEST(LoginHaystack, HelloStoresNothingAndItsTokenCarriesTheExchange) {
    auto f = haystack_exchange(request(), hello("alice"));
    Step s = f->start();
    ASSERT_EQ(s.kind, Step::Kind::answer);
    EXPECT_TRUE(s.calls.empty());
    EXPECT_EQ(s.answer.status, 401);
    std::string token = hello_token("alice");
    auto t = check_handshake_token(keys(), token, kNow);
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(t->user_tag, auth_user_tag(keys(), "alice"));
    EXPECT_EQ(t->expires_ms, kNow + policy().challenge_ttl_ms);
    EXPECT_FALSE(check_handshake_token(keys(), token, kNow + policy().challenge_ttl_ms)) << "expired";
    std::string forged = token;
    forged[30] = forged[30] == 'A' ? 'B' : 'A';
    EXPECT_FALSE(check_handshake_token(keys(), forged, kNow));
    EXPECT_FALSE(check_handshake_token(keys(), generate_token(auth_user_tag(keys(), "alice")), kNow));
}

TEST(LoginHaystack, KnownUserLogsInKeepingTheHelloToken) {
    std::string token = hello_token("alice");
    FirstResult first = run_first(token, "alice", user_reply({{"name", "alice"}, {"scram", scram_text()}}),
                                  address_start(0, true));
    auto f = haystack_exchange(request(), scram_step(token, client_final(kPassword, first.bare, first.server)));
    Step s = f->start();
    ASSERT_EQ(names(s), Names{"auth_handshake_take"});
    EXPECT_EQ(s.calls[0].keys, make_handshake_put(keys(), kPrefix, token, "", 1).keys) << "the same step key";
    // the state client-first stored
    std::string state = first.step.calls[0].args[0];
    s = f->stored(true, {str(state)});
    ASSERT_EQ(names(s), Names{"auth_session_create"});
    s = f->stored(true, {arr({num(1), num(kNow + 1000)})});
    ASSERT_EQ(names(s), Names{"auth_address_reset"});
    s = f->stored(true, {num(1)});
    EXPECT_EQ(s.answer.status, 200);
    EXPECT_EQ(header(s.answer, "Authentication-Info").rfind("authToken=", 0), 0u);
}

TEST(LoginHaystack, LockedKnownUserKeepsItsRealSaltAndFailsAtTheProof) {
    scram::Credentials real = *scram::parse_credentials(scram_text());
    std::string token = hello_token("alice");
    Reply alice = user_reply({{"name", "alice"}, {"scram", scram_text()}});
    Reply locked_alice = user_reply({{"name", "alice"}, {"scram", scram_text()}}, 60000);
    FirstResult open = run_first(token, "alice", alice, address_start(0, true));
    FirstResult locked_user = run_first(hello_token("alice"), "alice", locked_alice, address_start(0, true));
    FirstResult locked_addr = run_first(hello_token("alice"), "alice", alice, address_start(60000, true));
    for (const FirstResult* r : {&open, &locked_user, &locked_addr}) {
        EXPECT_EQ(r->server.salt_b64, base64(real.salt));
        EXPECT_EQ(r->server.iterations, real.iterations);
    }
    // the right password on a locked exchange fails at the proof, and counts
    std::string locked_token = hello_token("alice");
    FirstResult first = run_first(locked_token, "alice", locked_alice, address_start(0, true));
    auto f = haystack_exchange(request(), scram_step(locked_token, client_final(kPassword, first.bare, first.server)));
    f->start();
    Step s = f->stored(true, {str(first.step.calls[0].args[0])});
    expect_failure_step(s, "alice", f.get());
    s = f->stored(true, {num(0)});
    EXPECT_EQ(s.answer.status, 403);
    EXPECT_TRUE(s.answer.body.empty()) << "a bare 403";
}

TEST(LoginHaystack, UnknownUserSaltIsStableAndFailsAtTheProof) {
    FirstResult a = run_first(hello_token("ghost"), "ghost", no_user(), address_start(0, true));
    FirstResult b = run_first(hello_token("ghost"), "ghost", no_user(60000), address_start(60000, true));
    EXPECT_EQ(a.server.salt_b64, b.server.salt_b64) << "locked or not, the same fake salt";
    EXPECT_EQ(a.server.iterations, scram::kDefaultIterations);
    EXPECT_EQ(a.server.salt_b64, base64(scram::fake_credentials(keys(), "ghost").salt));
    std::string token = hello_token("ghost");
    FirstResult first = run_first(token, "ghost", no_user(), address_start(0, true));
    auto f = haystack_exchange(request(), scram_step(token, client_final("guess", first.bare, first.server)));
    f->start();
    Step s = f->stored(true, {str(first.step.calls[0].args[0])});
    expect_failure_step(s, "ghost");
}

TEST(LoginHaystack, RevokedOrScramlessUsers) {
    // revoked: real salt, fails at the proof; no SCRAM credentials: the fake salt
    FirstResult revoked = run_first(hello_token("alice"), "alice",
                                    user_reply({{"name", "alice"}, {"scram", scram_text()}, {"revoked", "{}"}}),
                                    address_start(0, true));
    EXPECT_EQ(revoked.server.salt_b64, base64(scram::parse_credentials(scram_text())->salt));
    FirstResult keyonly = run_first(hello_token("kim"), "kim", user_reply({{"name", "kim"}, {"key", "PEM"}}),
                                    address_start(0, true));
    EXPECT_EQ(keyonly.server.salt_b64, base64(scram::fake_credentials(keys(), "kim").salt));
}

TEST(LoginHaystack, WrongProofCountsAFailureAndAnswersABare403) {
    std::string token = hello_token("alice");
    FirstResult first = run_first(token, "alice", user_reply({{"name", "alice"}, {"scram", scram_text()}}),
                                  address_start(0, true));
    auto f = haystack_exchange(request(), scram_step(token, client_final("wrong", first.bare, first.server)));
    f->start();
    Step s = f->stored(true, {str(first.step.calls[0].args[0])});
    expect_failure_step(s, "alice", f.get());
    s = f->stored(true, {num(0)});
    EXPECT_EQ(s.answer.status, 403);
    EXPECT_TRUE(s.answer.body.empty());
}

TEST(LoginHaystack, ReplaysAreRefusedWithoutCounting) {
    std::string token = hello_token("alice");
    // client-first again with the same token: the store says the step was taken
    auto f = haystack_exchange(request(), scram_step(token, "n,,n=alice,r=x"));
    f->start();
    Step s = f->stored(true, {user_reply({{"name", "alice"}, {"scram", scram_text()}}), address_start(0, true)});
    ASSERT_EQ(names(s), Names{"auth_handshake_put"});
    s = f->stored(true, {num(0)});
    EXPECT_EQ(s.answer.status, 403);
    // client-final again: the state is gone
    auto g = haystack_exchange(request(), scram_step(token, "c=biws,r=x,p=AAAA"));
    g->start();
    s = g->stored(true, {Reply::nil_reply()});
    ASSERT_EQ(s.kind, Step::Kind::answer);
    EXPECT_EQ(s.answer.status, 403);
    EXPECT_TRUE(s.answer.body.empty());
}

TEST(LoginHaystack, ClientFirstMustNameTheHelloUserAndTheTokenMustBeOurs) {
    Step s = haystack_exchange(request(), scram_step(hello_token("alice"), "n,,n=mallory,r=x"))->start();
    ASSERT_EQ(s.kind, Step::Kind::answer);
    EXPECT_EQ(s.answer.status, 403);
    s = haystack_exchange(request(), scram_step(generate_token(auth_user_tag(keys(), "alice")), "n,,n=alice,r=x"))->start();
    ASSERT_EQ(s.kind, Step::Kind::answer);
    EXPECT_EQ(s.answer.status, 403);
}

TEST(LoginHaystack, SpentStartsShowTheExchangeButStoreNothing) {
    std::string token = hello_token("alice");
    auto f = haystack_exchange(request(), scram_step(token, "n,,n=alice,r=x"));
    f->start();
    Step s = f->stored(true, {user_reply({{"name", "alice"}, {"scram", scram_text()}}), address_start(0, false)});
    ASSERT_EQ(s.kind, Step::Kind::answer);
    EXPECT_EQ(s.answer.status, 401);
    EXPECT_EQ(parse_server_first(header(s.answer, "WWW-Authenticate")).salt_b64,
              base64(scram::parse_credentials(scram_text())->salt));
}

// ---- challenge / verify ---------------------------------------------------------------

TEST(LoginChallenge, SpendsTheAddressStartsThenStoresTheSeed) {
    auto f = challenge(request(), body("alice"));
    Step s = f->start();
    ASSERT_EQ(names(s), Names{"auth_address_start"});
    s = f->stored(true, {address_start(0, true)});
    ASSERT_EQ(names(s), Names{"auth_challenge_create"});
    s = f->stored(true, {num(300000)});
    EXPECT_EQ(s.answer.status, 200);

    auto g = challenge(request(), body("alice"));
    g->start();
    s = g->stored(true, {address_start(0, false)});
    ASSERT_EQ(s.kind, Step::Kind::answer) << "starts spent: nothing stored";
    EXPECT_EQ(s.answer.status, 200);
}

namespace {

struct KeyPair {
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key{nullptr, EVP_PKEY_free};
    std::string pem;
};

KeyPair ed25519() {
    KeyPair k;
    EVP_PKEY* raw = nullptr;
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr),
                                                                     EVP_PKEY_CTX_free);
    EVP_PKEY_keygen_init(ctx.get());
    EVP_PKEY_keygen(ctx.get(), &raw);
    k.key.reset(raw);
    unsigned char pub[32];
    size_t len = sizeof pub;
    EVP_PKEY_get_raw_public_key(raw, pub, &len);
    k.pem = PublicKey::from_raw_ed25519(std::string(reinterpret_cast<char*>(pub), len))->to_pem();
    return k;
}

std::string sign(EVP_PKEY* k, const std::string& message) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, k);
    size_t len = 64;
    std::string sig(64, '\0');
    EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(message.data()), message.size());
    return base64(sig);
}

ChallengeState state(bool exists, const std::string& pem, std::vector<std::string> seeds) {
    ChallengeState s;
    s.valid = true;
    s.exists = exists;
    s.key_pem = pem;
    s.key_fp = pem.empty() ? "" : "SHA256:x";
    s.seeds = std::move(seeds);
    return s;
}

// auth_challenge_list's reply
Reply list_reply(const ChallengeState& s, int64_t lock_ms = 0) {
    std::vector<Reply> e{num(kNow), num(s.exists), num(s.revoked), str(s.key_pem), str(s.key_fp), num(lock_ms)};
    for (const auto& seed : s.seeds) {
        e.push_back(str(seed));
    }
    return arr(std::move(e));
}

}  // namespace

TEST(LoginVerify, UnknownUsersVerifyWithADummyKeyLikeKnownOnes) {
    KeyPair bob = ed25519();
    std::vector<std::string> seeds{"seed-one", "seed-two"};
    SignatureWork known = plan_signature_work(keys(), state(true, bob.pem, seeds), "bob");
    SignatureWork unknown = plan_signature_work(keys(), state(false, "", seeds), "ghost");
    SignatureWork keyless = plan_signature_work(keys(), state(true, "", seeds), "kim");
    ChallengeState revoked_state = state(true, bob.pem, seeds);
    revoked_state.revoked = true;
    SignatureWork revoked = plan_signature_work(keys(), revoked_state, "bob");
    EXPECT_TRUE(known.real);
    EXPECT_EQ(known.key_pem, bob.pem);
    for (const SignatureWork* w : {&unknown, &keyless, &revoked}) {
        EXPECT_FALSE(w->real);
        EXPECT_EQ(w->key_pem, dummy_ed25519_pem()) << "a dummy key is verified";
        EXPECT_EQ(w->nonces.size(), seeds.size());
    }
    std::string bad = base64(std::string(64, 'x'));
    SignatureOutcome k = run_signature_work(known, "example.org", "bob", bad);
    SignatureOutcome u = run_signature_work(unknown, "example.org", "ghost", bad);
    EXPECT_FALSE(k.matched);
    EXPECT_FALSE(u.matched);
    EXPECT_EQ(k.keys_parsed, 2u);
    EXPECT_EQ(u.keys_parsed, k.keys_parsed);
    EXPECT_EQ(k.verifications, 2 * seeds.size()) << "one check of each key type per live challenge";
    EXPECT_EQ(u.verifications, k.verifications);
    // a good signature counts with the user's key only
    std::string good = sign(bob.key.get(), auth_signed_message("example.org", "bob", known.nonces[1]));
    EXPECT_EQ(run_signature_work(known, "example.org", "bob", good).matched, std::optional<size_t>(1));
    SignatureWork revoked_work = revoked;
    EXPECT_FALSE(run_signature_work(revoked_work, "example.org", "bob", good).matched);
    // a stored key that cannot be read: the dummy stands in, same work
    SignatureWork broken = plan_signature_work(keys(), state(true, "garbage", seeds), "bob");
    SignatureOutcome b = run_signature_work(broken, "example.org", "bob", good);
    EXPECT_FALSE(b.matched);
    EXPECT_EQ(b.verifications, k.verifications);
}

TEST(LoginVerify, UnknownUserAndBadSignatureGetTheSameAnswer) {
    KeyPair bob = ed25519();
    std::string bad = base64(std::string(64, 'x'));
    std::vector<Answer> answers;
    for (const auto& [user, st] : {std::pair{std::string("bob"), state(true, bob.pem, {"s1"})},
                                   std::pair{std::string("ghost"), state(false, "", {"s1"})}}) {
        auto f = verify(request(), body(user, "signature", bad));
        Step s = f->start();
        ASSERT_EQ(names(s), (Names{"auth_challenge_list", "auth_lock_status"}));
        s = f->stored(true, {list_reply(st), num(0)});
        expect_failure_step(s, user, f.get());
        s = f->stored(true, {num(0)});
        answers.push_back(s.answer);
    }
    EXPECT_EQ(answers[0].status, answers[1].status);
    EXPECT_EQ(answers[0].body, answers[1].body);
    EXPECT_EQ(answers[0].headers, answers[1].headers);
}

TEST(LoginVerify, ReplayedSignatureFailsWhenTheStoreRefusesTheSeed) {
    KeyPair bob = ed25519();
    ChallengeState st = state(true, bob.pem, {"s1"});
    std::string nonce = challenge_nonce(keys(), auth_user_tag(keys(), "bob"), "s1");
    std::string sig = sign(bob.key.get(), auth_signed_message("example.org", "bob", nonce));
    // the seed is still listed (a concurrent verify took it meanwhile):
    // auth_session_create refuses, and that counts like a bad signature
    auto f = verify(request(), body("bob", "signature", sig));
    f->start();
    Step s = f->stored(true, {list_reply(st), num(0)});
    ASSERT_EQ(names(s), Names{"auth_session_create"});
    s = f->stored(true, {Reply::nil_reply()});
    expect_failure_step(s, "bob", f.get());
    s = f->stored(true, {num(0)});
    EXPECT_EQ(s.answer.body, "{\"error\":\"invalid_credentials\"}");
}

TEST(LoginPassword, ThreadFailureIsA500) {
    auto f = password_login(request(), body("alice", "password", kPassword));
    f->start();
    f->stored(true, {user_reply({{"name", "alice"}, {"argon2", argon2_hash()}}), num(0)});
    PasswordResult r;
    r.failed = true;
    Step s = f->hashed(r);
    ASSERT_EQ(s.kind, Step::Kind::answer);
    EXPECT_EQ(s.answer.status, 500);
}

TEST(LoginVerify, GoodSignatureConsumesItsSeed) {
    KeyPair bob = ed25519();
    ChallengeState st = state(true, bob.pem, {"s1", "s2"});
    std::string nonce = challenge_nonce(keys(), auth_user_tag(keys(), "bob"), "s2");
    std::string sig = sign(bob.key.get(), auth_signed_message("example.org", "bob", nonce));
    auto f = verify(request(), body("bob", "signature", sig));
    f->start();
    Step s = f->stored(true, {list_reply(st), num(0)});
    ASSERT_EQ(names(s), Names{"auth_session_create"});
    // ARGV: token hash, ttl, method, name, challenge seed, key fingerprint, ...
    EXPECT_EQ(s.calls[0].args[4], "s2");
    // locked: refused before any signature, not counted
    auto g = verify(request(), body("bob", "signature", sig));
    g->start();
    s = g->stored(true, {list_reply(st, 1000), num(0)});
    ASSERT_EQ(s.kind, Step::Kind::answer);
    EXPECT_EQ(s.answer.status, 403);
}
