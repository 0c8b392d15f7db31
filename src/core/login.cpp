#include "login.hpp"

#include <openssl/crypto.h>

#include "session.hpp"
#include "signature.hpp"

namespace pairguard::login {

// ---- Flow --------------------------------------------------------------------

Flow::~Flow() = default;

Step Flow::start() {
    return begin();
}

Step Flow::stored(bool ok, const std::vector<Reply>& replies) {
    StoreNext next = std::move(on_stored_);
    on_stored_ = nullptr;
    if (!next) {
        Step s;
        s.answer = Answer{500, render_error("internal_error"), {}};
        return s;
    }
    return next(ok, replies);
}

Step Flow::hashed(const PasswordResult& result) {
    HashNext next = std::move(on_hashed_);
    on_hashed_ = nullptr;
    if (!next) {
        Step s;
        s.answer = Answer{500, render_error("internal_error"), {}};
        return s;
    }
    return next(result);
}

Step Flow::store(std::vector<StoreCall> calls, StoreNext next) {
    Step s;
    s.kind = Step::Kind::store;
    s.calls = std::move(calls);
    on_stored_ = std::move(next);
    return s;
}

Step Flow::check_password(PasswordWork work, HashNext next) {
    Step s;
    s.kind = Step::Kind::password;
    s.work = std::move(work);
    on_hashed_ = std::move(next);
    return s;
}

namespace {

Step answer(Answer a, std::vector<std::string> notices = {}) {
    Step s;
    s.answer = std::move(a);
    s.notices = std::move(notices);
    return s;
}

Step with_notice(Step s, std::string line) {
    s.notices.insert(s.notices.begin(), std::move(line));
    return s;
}

void wipe(std::string& s) {
    OPENSSL_cleanse(s.data(), s.size());
    s.clear();
}

// How a method answers: the JSON endpoints, or the Haystack exchange
// (docHaystack/Auth: every failure a bare 403).
enum class Style { json, haystack };

Answer refused(Style st) {
    // a wrong password, a bad signature or proof, a locked user or address,
    // an unknown or revoked user: one answer
    if (st == Style::haystack) {
        return Answer{403, std::string(), {}};
    }
    return Answer{403, render_error("invalid_credentials"), {}};
}

Answer unavailable() {
    return Answer{503, render_error("store_unavailable"), {}};
}

Answer invalid_request(const std::string& message) {
    return Answer{400, render_invalid_request(message), {}};
}

// What the flows share: failures, session issuance.
class LoginFlow : public Flow {
protected:
    LoginFlow(Request req, Style style) : req_(std::move(req)), style_(style) {}

    const KeyDeriver& keys() const { return *req_.keys; }
    std::string_view prefix() const { return req_.prefix; }
    const AuthPolicy& policy() const { return *req_.policy; }

    // A failed proof: one failure for the address, then, if the address was
    // not locked already, one for the user; then the answer of a wrong
    // password (whatever the counters said). The address goes first so that
    // an address makes at most max_failures user counters per lockout, even
    // with attempts in flight when its lock starts.
    Step fail(const std::string& user, const std::string& why) {
        Step s = store({make_address_failure(keys(), prefix(), req_.address, policy())},
                       [this, user](bool ok, const std::vector<Reply>& replies) {
                           auto addr = ok ? decode_failure(replies.at(0)) : std::nullopt;
                           std::vector<std::string> notices = lock_notices("address", addr);
                           if (!addr || *addr < 0) {
                               return answer(refused(style_), std::move(notices));
                           }
                           return store({make_user_failure(keys(), prefix(), user, policy())},
                                        [this, notices](bool ok2, const std::vector<Reply>& r2) {
                                            std::vector<std::string> all = notices;
                                            for (auto& n : lock_notices("user", ok2 ? decode_failure(r2.at(0))
                                                                                    : std::nullopt)) {
                                                all.push_back(std::move(n));
                                            }
                                            return answer(refused(style_), std::move(all));
                                        });
                       });
        return with_notice(std::move(s), "auth refused (" + why + ")");
    }

    static std::vector<std::string> lock_notices(const char* what, std::optional<int64_t> lock) {
        if (!lock || *lock <= 0) {
            return {};
        }
        return {std::string("auth lockout start, ") + what + ", " + std::to_string((*lock + 999) / 1000) + "s"};
    }

    // After a successful proof: the session (the store re-checks that the
    // user may still log in), then the address's starts given back.
    Step issue(const std::string& user, SessionCreate sc, std::string method_note,
               std::function<Answer(const std::string& token, int64_t expires_ms)> success) {
        sc.token = generate_token(auth_user_tag(keys(), user));
        sc.ttl_ms = policy().session_ttl_ms;
        std::string token = sc.token;
        return store({make_session_create(keys(), prefix(), user, sc)},
                     [this, user, token, method_note, success](bool ok, const std::vector<Reply>& replies) {
                         SessionCreated c = ok ? decode_session_create(replies.at(0)) : SessionCreated{};
                         if (!c.valid) {
                             return answer(unavailable());
                         }
                         if (!c.ok) {
                             // the user went, was revoked or locked meanwhile
                             return fail(user, "session refused");
                         }
                         Answer a = success(token, c.expires_ms);
                         return store({make_address_reset(keys(), prefix(), req_.address)},
                                      [a, method_note](bool, const std::vector<Reply>&) {
                                          return answer(a, {"auth login, method " + method_note});
                                      });
                     });
    }

    Request req_;
    Style style_;
};

// ---- password (and Haystack PLAINTEXT) -------------------------------------------

class PasswordFlow : public LoginFlow {
public:
    PasswordFlow(Request req, Style style, std::string user, std::string password, std::string parse_error)
        : LoginFlow(std::move(req), style),
          user_(std::move(user)),
          password_(std::move(password)),
          parse_error_(std::move(parse_error)) {}
    ~PasswordFlow() override { wipe(password_); }

protected:
    Step begin() override {
        if (!parse_error_.empty()) {
            wipe(password_);
            return answer(invalid_request(parse_error_));
        }
        if (style_ == Style::haystack) {
            Plaintext mode = policy().plaintext;
            if (mode == Plaintext::off || (mode == Plaintext::tls_only && !req_.tls)) {
                wipe(password_);
                return answer(refused(style_), {std::string("auth refused (haystack plaintext ")
                                                 + (mode == Plaintext::off ? "is off" : "without TLS") + ")"});
            }
        }
        return store({make_user_get(keys(), prefix(), user_), make_address_lock_status(keys(), prefix(), req_.address)},
                     [this](bool ok, const std::vector<Reply>& replies) { return looked_up(ok, replies); });
    }

private:
    Step looked_up(bool ok, const std::vector<Reply>& replies) {
        UserInfo u = ok ? decode_user_get(replies.at(0)) : UserInfo{};
        auto addr_lock = ok ? decode_lock_ms(replies.at(1)) : std::nullopt;
        if (!u.valid || !addr_lock) {
            wipe(password_);
            return answer(unavailable());
        }
        if (u.lock_ms > 0 || *addr_lock > 0) {
            // locked: the answer of a wrong password, without burning a thread on it
            wipe(password_);
            return answer(refused(style_), {"auth refused (locked)"});
        }
        PasswordWork w;
        w.stored = u.exists && !u.revoked ? u.argon2 : std::string();
        w.password = std::move(password_);
        wipe(password_);
        w.params = policy().argon2;
        stored_hash_ = w.stored;
        return check_password(std::move(w), [this](const PasswordResult& r) { return checked(r); });
    }

    Step checked(const PasswordResult& r) {
        if (r.failed) {
            return answer(Answer{500, render_error("internal_error"), {}},
                          {"password verification failed (resources)"});
        }
        if (r.check != PasswordCheck::ok) {
            Step s = fail(user_, style_ == Style::haystack ? "haystack: plaintext password" : "password");
            if (r.check == PasswordCheck::invalid_hash) {
                s.notices.push_back("stored password hash refused");
            }
            return s;
        }
        SessionCreate sc;
        sc.method = style_ == Style::haystack ? AuthMethod::haystack : AuthMethod::password;
        if (!r.rehash.empty()) {
            sc.rehash_from = stored_hash_;
            sc.rehash_to = r.rehash;
        }
        if (style_ == Style::haystack) {
            return issue(user_, std::move(sc), "haystack plaintext", [](const std::string& token, int64_t) {
                return Answer{200, "{}", {{"Authentication-Info", "authToken=" + token}}};
            });
        }
        return issue(user_, std::move(sc), "password", [](const std::string& token, int64_t expires_ms) {
            return Answer{200, render_token(token, expires_ms / 1000), {}};
        });
    }

    std::string user_, password_, parse_error_, stored_hash_;
};

// ---- challenge ---------------------------------------------------------------------

class ChallengeFlow : public LoginFlow {
public:
    ChallengeFlow(Request req, std::string_view body) : LoginFlow(std::move(req), Style::json) {
        parse_error_ = parse_auth_body(body, in_);
        wipe(in_.password);
    }

protected:
    Step begin() override {
        if (!parse_error_.empty()) {
            return answer(invalid_request(parse_error_));
        }
        // the same for every valid name: whether the user exists, has a key,
        // is revoked or locked, a nonce
        std::string seed = generate_challenge_seed();
        std::string nonce = challenge_nonce(keys(), auth_user_tag(keys(), in_.user), seed);
        int64_t ttl = policy().challenge_ttl_ms;
        Answer ok{200, render_challenge(nonce, (ttl + 999) / 1000), {}};
        return store({make_address_start(keys(), prefix(), req_.address, policy())},
                     [this, seed, ttl, ok](bool good, const std::vector<Reply>& replies) {
                         AddressStart a = good ? decode_address_start(replies.at(0)) : AddressStart{};
                         if (!a.valid) {
                             return answer(unavailable());
                         }
                         if (!a.allowed) {
                             // a nonce that was never stored: verify fails like a used one
                             return answer(ok, {"auth starts spent, address: challenge not stored"});
                         }
                         return store({make_challenge_create(keys(), prefix(), in_.user, seed, ttl)},
                                      [ok](bool good2, const std::vector<Reply>& r2) {
                                          if (!good2 || !decode_challenge_create(r2.at(0))) {
                                              return answer(unavailable());
                                          }
                                          return answer(ok);
                                      });
                     });
    }

private:
    AuthInput in_;
    std::string parse_error_;
};

// ---- verify ----------------------------------------------------------------------------

class VerifyFlow : public LoginFlow {
public:
    VerifyFlow(Request req, std::string_view body) : LoginFlow(std::move(req), Style::json) {
        parse_error_ = parse_auth_body(body, in_);
        wipe(in_.password);
        if (parse_error_.empty() && in_.signature.empty()) {
            parse_error_ = "\"signature\" is missing";
        }
        if (parse_error_.empty() && in_.signature.size() > kSignatureMaxChars) {
            parse_error_ = "\"signature\" is too long";
        }
    }

protected:
    Step begin() override {
        if (!parse_error_.empty()) {
            return answer(invalid_request(parse_error_));
        }
        return store({make_challenge_list(keys(), prefix(), in_.user),
                      make_address_lock_status(keys(), prefix(), req_.address)},
                     [this](bool ok, const std::vector<Reply>& replies) { return listed(ok, replies); });
    }

private:
    Step listed(bool ok, const std::vector<Reply>& replies) {
        ChallengeState s = ok ? decode_challenge_list(replies.at(0)) : ChallengeState{};
        auto addr_lock = ok ? decode_lock_ms(replies.at(1)) : std::nullopt;
        if (!s.valid || !addr_lock) {
            return answer(unavailable());
        }
        if (s.lock_ms > 0 || *addr_lock > 0) {
            return answer(refused(style_), {"auth refused (locked)"});
        }
        SignatureWork work = plan_signature_work(keys(), s, in_.user);
        SignatureOutcome out = run_signature_work(work, req_.host, in_.user, in_.signature);
        if (!out.matched) {
            return fail(in_.user, "signature");
        }
        SessionCreate sc;
        sc.method = AuthMethod::challenge;
        sc.challenge_seed = work.seeds[*out.matched];
        sc.key_fp = s.key_fp;
        return issue(in_.user, std::move(sc), "challenge", [](const std::string& token, int64_t expires_ms) {
            return Answer{200, render_token(token, expires_ms / 1000), {}};
        });
    }

    AuthInput in_;
    std::string parse_error_;
};

// ---- Haystack ------------------------------------------------------------------------------

Answer haystack_unauthorized(std::string www_authenticate) {
    return Answer{401, render_error("unauthorized"), {{"WWW-Authenticate", std::move(www_authenticate)}}};
}

class HaystackFlow : public LoginFlow {
public:
    HaystackFlow(Request req, const haystack::Authorization& auth)
        : LoginFlow(std::move(req), Style::haystack), auth_(auth) {}

protected:
    Step begin() override {
        if (auth_.kind == haystack::Kind::hello) {
            // nothing stored: the token says whose exchange it is, and until when
            std::string t = generate_handshake_token(keys(), auth_user_tag(keys(), auth_.user),
                                                     req_.now_ms + policy().challenge_ttl_ms);
            return answer(haystack_unauthorized(haystack::hello_challenge(t)));
        }
        auto token = check_handshake_token(keys(), auth_.handshake_token, req_.now_ms);
        if (!token) {
            return answer(refused(style_), {"auth refused (haystack: unknown or expired handshake token)"});
        }
        token_ = *token;
        if (auth_.data.rfind("c=", 0) == 0) {
            return final_step();
        }
        return first_step();
    }

private:
    Step first_step() {
        if (scram::parse_client_first(auth_.data, first_) != scram::Error::none
            || auth_user_tag(keys(), first_.user) != token_.user_tag) {
            // not a proof: nothing to count
            return answer(refused(style_), {"auth refused (haystack: client-first)"});
        }
        return store({make_user_get(keys(), prefix(), first_.user),
                      make_address_start(keys(), prefix(), req_.address, policy())},
                     [this](bool ok, const std::vector<Reply>& replies) { return first_looked_up(ok, replies); });
    }

    Step first_looked_up(bool ok, const std::vector<Reply>& replies) {
        UserInfo u = ok ? decode_user_get(replies.at(0)) : UserInfo{};
        AddressStart a = ok ? decode_address_start(replies.at(1)) : AddressStart{};
        if (!u.valid || !a.valid) {
            return answer(unavailable());
        }
        // What the exchange shows depends only on whether the user has SCRAM
        // credentials; whether it may succeed is decided at the proof.
        std::optional<scram::Credentials> creds;
        if (u.exists && !u.scram.empty()) {
            creds = scram::parse_credentials(u.scram);
        }
        bool may_succeed = creds.has_value() && !u.revoked && u.lock_ms == 0 && a.lock_ms == 0;
        if (!creds) {
            creds = scram::fake_credentials(keys(), first_.user);
        }
        scram::Handshake h = scram::start(first_, *creds, may_succeed, scram::generate_server_nonce(),
                                          token_.expires_ms);
        Answer challenge = haystack_unauthorized(haystack::server_first_challenge(auth_.handshake_token,
                                                                                  h.server_first));
        if (!a.allowed) {
            // shown, never stored: client-final fails like a wrong proof
            return answer(challenge, {"auth starts spent, address: handshake not stored"});
        }
        return store({make_handshake_put(keys(), prefix(), auth_.handshake_token, scram::serialize(h),
                                         std::max<int64_t>(1, token_.expires_ms - req_.now_ms))},
                     [challenge](bool ok2, const std::vector<Reply>& r2) {
                         auto put = ok2 ? decode_handshake_put(r2.at(0)) : std::nullopt;
                         if (!put) {
                             return answer(unavailable());
                         }
                         if (!*put) {
                             return answer(Answer{403, std::string(), {}},
                                           {"auth refused (haystack: client-first replayed)"});
                         }
                         return answer(challenge);
                     });
    }

    Step final_step() {
        return store({make_handshake_take(keys(), prefix(), auth_.handshake_token)},
                     [this](bool ok, const std::vector<Reply>& replies) {
                         if (!ok) {
                             return answer(unavailable());
                         }
                         auto value = decode_handshake_take(replies.at(0));
                         auto h = value ? scram::parse_handshake(*value) : std::nullopt;
                         if (!h) {
                             return answer(refused(style_), {"auth refused (haystack: no such exchange step)"});
                         }
                         std::string server_final;
                         scram::Error e = scram::finish(*h, auth_.data, req_.now_ms, server_final);
                         if (e != scram::Error::none) {
                             return fail(h->user, std::string("haystack: ") + scram::error_name(e));
                         }
                         SessionCreate sc;
                         sc.method = AuthMethod::haystack;
                         return issue(h->user, std::move(sc), "haystack",
                                      [server_final](const std::string& token, int64_t) {
                                          return Answer{200, "{}",
                                                        {{"Authentication-Info",
                                                          haystack::authentication_info(token, server_final)}}};
                                      });
                     });
    }

    haystack::Authorization auth_;
    HandshakeToken token_;
    scram::ClientFirst first_;
};

// The password of an AuthInput, or why the body is refused.
std::string password_body(std::string_view body, AuthInput& in) {
    std::string err = parse_auth_body(body, in);
    if (err.empty() && in.password.empty()) {
        err = "\"password\" is missing";
    }
    return err;
}

}  // namespace

std::unique_ptr<Flow> password_login(Request req, std::string_view body) {
    AuthInput in;
    std::string err = password_body(body, in);
    auto f = std::make_unique<PasswordFlow>(std::move(req), Style::json, in.user, in.password, err);
    wipe(in.password);
    return f;
}

std::unique_ptr<Flow> challenge(Request req, std::string_view body) {
    return std::make_unique<ChallengeFlow>(std::move(req), body);
}

std::unique_ptr<Flow> verify(Request req, std::string_view body) {
    return std::make_unique<VerifyFlow>(std::move(req), body);
}

std::unique_ptr<Flow> haystack_exchange(Request req, const haystack::Authorization& auth) {
    if (auth.kind == haystack::Kind::plaintext) {
        return std::make_unique<PasswordFlow>(std::move(req), Style::haystack, auth.user, auth.password,
                                              std::string());
    }
    return std::make_unique<HaystackFlow>(std::move(req), auth);
}

// ---- signatures --------------------------------------------------------------------------

const std::string& dummy_ed25519_pem() {
    static const std::string pem =
        "-----BEGIN PUBLIC KEY-----\n"
        "MCowBQYDK2VwAyEAkLCCSd+X9eO9vnOEMaF41HiL2PPoWuCYzkxDPHzi5l8=\n"
        "-----END PUBLIC KEY-----\n";
    return pem;
}

const std::string& dummy_ecdsa_pem() {
    static const std::string pem =
        "-----BEGIN PUBLIC KEY-----\n"
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEcev8z1D5jQMuq37eRnyGSRnrHB3u\n"
        "qUKYZEMT7Wj0WVaCNWrB6nwR+xppmMI4O43yZEw/I4VWmWP/xwtcN0sBDw==\n"
        "-----END PUBLIC KEY-----\n";
    return pem;
}

SignatureWork plan_signature_work(const KeyDeriver& keys, const ChallengeState& state, std::string_view user) {
    SignatureWork w;
    w.real = state.exists && !state.revoked && !state.key_pem.empty();
    w.key_pem = w.real ? state.key_pem : dummy_ed25519_pem();
    std::string utag = auth_user_tag(keys, user);
    for (const std::string& seed : state.seeds) {
        w.seeds.push_back(seed);
        w.nonces.push_back(challenge_nonce(keys, utag, seed));
    }
    return w;
}

SignatureOutcome run_signature_work(const SignatureWork& work, std::string_view host, std::string_view user,
                                    std::string_view signature_b64) {
    SignatureOutcome out;
    bool real = work.real;
    std::optional<PublicKey> key = PublicKey::from_pem(work.key_pem);
    out.keys_parsed++;
    if (!key) {
        // a stored key this build cannot read: the dummy stands in
        real = false;
        key = PublicKey::from_pem(dummy_ed25519_pem());
    }
    // the other key type's dummy, so that every caller pays one check of each type
    std::optional<PublicKey> other =
        PublicKey::from_pem(key && key->type() == KeyType::ed25519 ? dummy_ecdsa_pem() : dummy_ed25519_pem());
    out.keys_parsed++;
    if (!key || !other) {
        return out;
    }
    for (size_t i = 0; i < work.nonces.size(); i++) {
        bool ok = verify_auth_signature(*key, host, user, work.nonces[i], signature_b64);
        bool ignored = verify_auth_signature(*other, host, user, work.nonces[i], signature_b64);
        (void) ignored;
        out.verifications += 2;
        if (ok && real && !out.matched) {
            out.matched = i;
        }
    }
    return out;
}

}  // namespace pairguard::login
