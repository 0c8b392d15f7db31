#include "body.hpp"

#include "json.hpp"

#include <jansson.h>

#include <cctype>
#include <memory>

namespace pairguard {

namespace {

std::string lower_media_type(std::string_view ct) {
    size_t semi = ct.find(';');
    std::string_view t = ct.substr(0, semi);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) {
        t.remove_suffix(1);
    }
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) {
        t.remove_prefix(1);
    }
    std::string out(t);
    for (char& c : out) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return out;
}

bool looks_like_json(std::string_view body) {
    for (char c : body) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            continue;
        }
        return c == '{' || c == '[';
    }
    return false;
}

int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

BodyFields parse_json(std::string_view body) {
    BodyFields out;
    json_error_t err;
    JsonPtr root(json_loadb(body.data(), body.size(), JSON_REJECT_DUPLICATES, &err));
    if (!root || !json_is_object(root.get())) {
        out.status = BodyStatus::invalid;
        return out;
    }
    out.status = BodyStatus::ok;
    const char* name;
    json_t* value;
    json_object_foreach(root.get(), name, value) {
        switch (json_typeof(value)) {
        case JSON_STRING:
            out.fields.emplace(name, std::string(json_string_value(value), json_string_length(value)));
            break;
        case JSON_INTEGER:
        case JSON_REAL:
        case JSON_TRUE:
        case JSON_FALSE: {
            std::unique_ptr<char, decltype(&free)> text(json_dumps(value, JSON_ENCODE_ANY), &free);
            if (text) {
                out.fields.emplace(name, text.get());
            }
            break;
        }
        default:
            break;
        }
    }
    return out;
}

BodyFields parse_form(std::string_view body) {
    BodyFields out;
    out.status = BodyStatus::ok;
    while (!body.empty()) {
        size_t amp = body.find('&');
        std::string_view pair = body.substr(0, amp);
        body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
        if (pair.empty()) {
            continue;
        }
        size_t eq = pair.find('=');
        std::string name = form_decode(pair.substr(0, eq));
        std::string value = eq == std::string_view::npos ? std::string() : form_decode(pair.substr(eq + 1));
        out.fields.emplace(std::move(name), std::move(value));  // first one wins
    }
    return out;
}

}  // namespace

std::string_view BodyFields::get(std::string_view name) const {
    auto it = fields.find(std::string(name));
    return it == fields.end() ? std::string_view() : std::string_view(it->second);
}

std::string form_decode(std::string_view in) {
    std::string out;
    out.reserve(in.size());
    for (size_t i = 0; i < in.size(); i++) {
        char c = in[i];
        if (c == '+') {
            out.push_back(' ');
        } else if (c == '%' && i + 2 < in.size() && hexval(in[i + 1]) >= 0
                   && hexval(in[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hexval(in[i + 1]) * 16 + hexval(in[i + 2])));
            i += 2;
        } else {
            out.push_back(c);
        }
    }
    return out;
}

BodyFields parse_body_fields(std::string_view content_type, std::string_view body) {
    std::string type = lower_media_type(content_type);
    if (type == "application/json" || (type.size() > 5 && type.compare(type.size() - 5, 5, "+json") == 0)) {
        return parse_json(body);
    }
    if (type == "application/x-www-form-urlencoded") {
        return parse_form(body);
    }
    if (type.empty()) {
        return looks_like_json(body) ? parse_json(body) : parse_form(body);
    }
    return {};
}

}  // namespace pairguard
