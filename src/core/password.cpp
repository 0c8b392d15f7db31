#include "password.hpp"

#include <argon2.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/mman.h>
#include <unistd.h>

#include <charconv>
#include <stdexcept>
#include <vector>

#include "encoding.hpp"

namespace pairguard {

namespace {

constexpr std::string_view kPrefix = "$argon2id$v=19$";

// Argon2's blocks (m KiB per hash) in a mapping of their own, returned to
// the system when the hash is done (libargon2 wipes them first). With
// malloc, glibc ends up keeping them in the arenas of the thread pool's
// threads: hundreds of MB of worker RSS that never go back.
// The mapping is aligned on 2 MiB and asked for transparent huge pages:
// faulting 19 MiB in 4 KiB pages on every hash made it about 4 times slower.
constexpr size_t kHugePage = 2 * 1024 * 1024;

int map_blocks(uint8_t** memory, size_t bytes) {
    size_t len = bytes + kHugePage;
    void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        *memory = nullptr;
        return ARGON2_MEMORY_ALLOCATION_ERROR;
    }
    auto base = reinterpret_cast<uintptr_t>(p);
    uintptr_t aligned = (base + kHugePage - 1) & ~(uintptr_t(kHugePage) - 1);
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    size_t used = (bytes + page - 1) / page * page;
    // what lies outside [aligned, aligned + used) goes back at once
    if (aligned > base) {
        munmap(p, aligned - base);
    }
    if (base + len > aligned + used) {
        munmap(reinterpret_cast<void*>(aligned + used), base + len - (aligned + used));
    }
#ifdef MADV_HUGEPAGE
    madvise(reinterpret_cast<void*>(aligned), used, MADV_HUGEPAGE);  // a hint: fine if refused
#endif
    *memory = reinterpret_cast<uint8_t*>(aligned);
    return ARGON2_OK;
}

void unmap_blocks(uint8_t* memory, size_t bytes) {
    size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    munmap(memory, (bytes + page - 1) / page * page);
}

// Argon2id of `password` into out[0..outlen), through libargon2's context
// API with the blocks above. Returns libargon2's code.
int argon2id_raw(const Argon2Params& params, std::string_view password, const uint8_t* salt, size_t salt_len,
                 uint8_t* out, size_t outlen) {
    if (password.size() > ARGON2_MAX_PWD_LENGTH || outlen > ARGON2_MAX_OUTLEN) {
        return ARGON2_PWD_TOO_LONG;
    }
    argon2_context c{};
    c.out = out;
    c.outlen = static_cast<uint32_t>(outlen);
    // libargon2 only reads these (no ARGON2_FLAG_CLEAR_PASSWORD)
    c.pwd = reinterpret_cast<uint8_t*>(const_cast<char*>(password.data()));
    c.pwdlen = static_cast<uint32_t>(password.size());
    c.salt = const_cast<uint8_t*>(salt);
    c.saltlen = static_cast<uint32_t>(salt_len);
    c.t_cost = params.t;
    c.m_cost = params.m_kib;
    c.lanes = params.p;
    c.threads = params.p;
    c.version = ARGON2_VERSION_13;
    c.allocate_cbk = map_blocks;
    c.free_cbk = unmap_blocks;
    c.flags = ARGON2_DEFAULT_FLAGS;
    return argon2_ctx(&c, Argon2_id);
}

bool within(const Argon2Params& p, const Argon2Limits& l) {
    return p.t >= 1 && p.p >= 1 && p.m_kib >= 8 * p.p && p.m_kib <= l.max_m_kib && p.t <= l.max_t &&
           p.p <= l.max_p;
}

// "NAME=DECIMAL" with no sign and no leading zero.
bool field(std::string_view s, std::string_view name, uint32_t& out) {
    if (s.size() <= name.size() + 1 || s.substr(0, name.size()) != name || s[name.size()] != '=') {
        return false;
    }
    s.remove_prefix(name.size() + 1);
    if (s.size() > 10 || (s[0] == '0' && s.size() > 1)) {
        return false;
    }
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
    return ec == std::errc() && p == s.data() + s.size();
}

// Unpadded standard base64, as libargon2 writes (and reads) it.
bool b64_field(std::string_view s, size_t min, size_t max, std::string& raw) {
    for (char c : s) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
        if (!ok) {
            return false;
        }
    }
    if (!base64_decode_lenient(s, raw)) {
        return false;
    }
    return raw.size() >= min && raw.size() <= max;
}

// A stored hash's parameters, salt and hash (see parse_password_hash).
std::optional<PasswordHashInfo> parse_hash(std::string_view encoded, const Argon2Limits& limits, std::string& salt,
                                           std::string& hash) {
    if (encoded.size() > 512 || encoded.substr(0, kPrefix.size()) != kPrefix) {
        return std::nullopt;
    }
    std::string_view rest = encoded.substr(kPrefix.size());
    size_t d1 = rest.find('$');
    size_t d2 = d1 == std::string_view::npos ? d1 : rest.find('$', d1 + 1);
    if (d2 == std::string_view::npos || rest.find('$', d2 + 1) != std::string_view::npos) {
        return std::nullopt;
    }
    std::string_view params = rest.substr(0, d1);
    size_t c1 = params.find(',');
    size_t c2 = c1 == std::string_view::npos ? c1 : params.find(',', c1 + 1);
    if (c2 == std::string_view::npos) {
        return std::nullopt;
    }
    PasswordHashInfo info;
    if (!field(params.substr(0, c1), "m", info.params.m_kib) ||
        !field(params.substr(c1 + 1, c2 - c1 - 1), "t", info.params.t) ||
        !field(params.substr(c2 + 1), "p", info.params.p) || !within(info.params, limits) ||
        !b64_field(rest.substr(d1 + 1, d2 - d1 - 1), 8, 64, salt) || !b64_field(rest.substr(d2 + 1), 16, 64, hash)) {
        return std::nullopt;
    }
    info.salt_bytes = salt.size();
    info.hash_bytes = hash.size();
    return info;
}

}  // namespace

std::string hash_password(std::string_view password, const Argon2Params& params) {
    if (!within(params, Argon2Limits{})) {
        throw std::invalid_argument("Argon2 parameters out of range");
    }
    uint8_t salt[kArgon2SaltBytes];
    if (RAND_bytes(salt, sizeof salt) != 1) {
        throw std::runtime_error("RAND_bytes() failed");
    }
    uint8_t hash[kArgon2HashBytes];
    int rc = argon2id_raw(params, password, salt, sizeof salt, hash, sizeof hash);
    if (rc != ARGON2_OK) {
        OPENSSL_cleanse(salt, sizeof salt);
        throw std::runtime_error(std::string("argon2id: ") + argon2_error_message(rc));
    }
    // "$argon2id$v=19$m=M,t=T,p=P$SALT$HASH", as libargon2 encodes it
    std::string encoded(kPrefix);
    encoded.append("m=").append(std::to_string(params.m_kib));
    encoded.append(",t=").append(std::to_string(params.t));
    encoded.append(",p=").append(std::to_string(params.p));
    encoded.append("$").append(base64_unpadded(salt, sizeof salt));
    encoded.append("$").append(base64_unpadded(hash, sizeof hash));
    OPENSSL_cleanse(salt, sizeof salt);
    OPENSSL_cleanse(hash, sizeof hash);
    return encoded;
}

std::optional<PasswordHashInfo> parse_password_hash(std::string_view encoded, const Argon2Limits& limits) {
    std::string salt, hash;
    return parse_hash(encoded, limits, salt, hash);
}

PasswordCheck verify_password(std::string_view encoded, std::string_view password, const Argon2Limits& limits) {
    std::string salt, want;
    std::optional<PasswordHashInfo> info = parse_hash(encoded, limits, salt, want);
    if (!info) {
        return PasswordCheck::invalid_hash;
    }
    std::vector<uint8_t> got(want.size());
    int rc = argon2id_raw(info->params, password, reinterpret_cast<const uint8_t*>(salt.data()), salt.size(),
                          got.data(), got.size());
    if (rc == ARGON2_MEMORY_ALLOCATION_ERROR || rc == ARGON2_THREAD_FAIL) {
        throw std::runtime_error(std::string("argon2id: ") + argon2_error_message(rc));
    }
    if (rc != ARGON2_OK) {
        return PasswordCheck::invalid_hash;
    }
    bool same = CRYPTO_memcmp(got.data(), want.data(), want.size()) == 0;
    OPENSSL_cleanse(got.data(), got.size());
    OPENSSL_cleanse(want.data(), want.size());
    return same ? PasswordCheck::ok : PasswordCheck::mismatch;
}

PasswordCheck verify_password_dummy(std::string_view password, const Argon2Params& params) {
    if (!within(params, Argon2Limits{})) {
        throw std::invalid_argument("Argon2 parameters out of range");
    }
    static const uint8_t salt[kArgon2SaltBytes] = {'p', 'a', 'i', 'r', 'g', 'u', 'a', 'r',
                                                   'd', '-', 'd', 'u', 'm', 'm', 'y', '!'};
    uint8_t out[kArgon2HashBytes];
    int rc = argon2id_raw(params, password, salt, sizeof salt, out, sizeof out);
    OPENSSL_cleanse(out, sizeof out);
    if (rc != ARGON2_OK) {
        throw std::runtime_error(std::string("argon2id: ") + argon2_error_message(rc));
    }
    return PasswordCheck::mismatch;
}

bool needs_rehash(std::string_view encoded, const Argon2Params& policy) {
    std::optional<PasswordHashInfo> info = parse_password_hash(encoded);
    return !info || info->params.m_kib < policy.m_kib || info->params.t < policy.t || info->params.p < policy.p ||
           info->salt_bytes < kArgon2SaltBytes || info->hash_bytes < kArgon2HashBytes;
}

}  // namespace pairguard
