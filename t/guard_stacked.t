# Two policies on one location: one per client address, one per submitted
# code (a field of the JSON or form body). The code policy stops a code tried
# from many addresses; the body still reaches the upstream unchanged;
# key_required refuses a request without the field, other policies skip it.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();
my $ng    = start_nginx(<<'CONF', redis => $redis, upstream => $up);
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=100ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy by_ip     key=$remote_addr max_failures=6 window=10s lockout=10s;
    pairguard_policy by_code   key=$pairguard_body_pairing_code max_failures=3 window=10s lockout=10s;
    pairguard_policy need_code key=$pairguard_body_pairing_code max_failures=3 window=10s lockout=10s key_required;

    set_real_ip_from 127.0.0.1;
    real_ip_header X-Forwarded-For;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /api/provision/pair {
            pairguard by_ip;
            pairguard by_code;
            pairguard_failure_status 404;
            pairguard_neutral_status 410;
            add_header X-Guard-Policy "$pairguard_policy" always;
            proxy_pass http://backend;
        }

        # the same guard in front of /echo, to see what the upstream receives
        location = /echo {
            pairguard by_ip;
            pairguard by_code;
            pairguard_failure_status 404;
            proxy_pass http://backend;
        }

        location = /strict/pair {
            pairguard need_code;
            pairguard_failure_status 404;
            proxy_pass http://backend/api/provision/pair;
        }

        # an upstream 400 counts here: a skipped policy must not count it
        location = /lenient/pair {
            pairguard by_code;
            pairguard_failure_status 400 404;
            proxy_pass http://backend/api/provision/pair;
        }
    }
}
CONF

my $port = $ng->port;
sub pair_json ($code, $xff, %o) {
    return http_post_json($port, '/api/provision/pair', { pairing_code => $code },
        headers => { 'X-Forwarded-For' => $xff }, %o);
}
sub pair_form ($code, $xff) {
    return http_post_form($port, '/api/provision/pair', { pairing_code => $code, name => 'Hall' },
        headers => { 'X-Forwarded-For' => $xff });
}

# --- a code tried from many addresses --------------------------------------

my @st = map { pair_json('111111', "10.0.0.$_")->{status} } 1 .. 3;
is_deeply(\@st, [404, 404, 404], 'one unknown code from three addresses: three 404s');
my $r = pair_json('111111', '10.0.0.4');
is($r->{status}, 429, 'the fourth address trying the same code is refused');
is($r->{headers}{'x-guard-policy'}, 'by_code', 'by the code policy');
is($r->{json}{error}, 'too_many_attempts', 'with the too_many_attempts body');
is(pair_json('111112', '10.0.0.4')->{status}, 404, 'another code from that address still reaches the upstream');
is(pair_form('111111', '10.0.0.5')->{status}, 429, 'the locked code is refused when sent as a form too');

@st = map { pair_form('222222', "10.0.1.$_")->{status} } 1 .. 3;
is_deeply(\@st, [404, 404, 404], 'a code sent as a form from three addresses: three 404s');
is(pair_form('222222', '10.0.1.4')->{status}, 429, 'is locked for the fourth address');

@st = (pair_json('333333', '10.0.2.1')->{status}, pair_form('333333', '10.0.2.2')->{status},
       pair_json('333333', '10.0.2.3')->{status});
is_deeply(\@st, [404, 404, 404], 'a code sent as JSON, form and JSON: three 404s');
is(pair_form('333333', '10.0.2.4')->{status}, 429, 'JSON and form attempts count toward the same code');

# --- the address policy still works alongside ------------------------------

@st = map { pair_json(sprintf('4%05d', $_), '10.0.3.1')->{status} } 1 .. 6;
is_deeply(\@st, [(404) x 6], 'six different codes from one address: six 404s');
$r = pair_json('499999', '10.0.3.1');
is($r->{status}, 429, 'the seventh from that address is refused');
is($r->{headers}{'x-guard-policy'}, 'by_ip', 'by the address policy');

# --- the body reaches the upstream unchanged -------------------------------

my $json = qq({ "pairing_code" : "555001",\n  "name": "Caf\\u00e9 \xe2\x98\x95",  "extra": [1, {"pairing_code": "x"}] }\n);
$r = http($port, 'POST', '/echo', body => $json, headers => { 'Content-Type' => 'application/json; charset=utf-8' });
is($r->{status}, 200, 'a guarded JSON request reaches /echo');
my $seen = $r->{json} // {};
my $want = $json;
utf8::decode($want);
is($seen->{body}, $want, 'the upstream gets the JSON body byte for byte');
is($seen->{headers}{'content-type'}, 'application/json; charset=utf-8', 'and the Content-Type unchanged');
is($seen->{headers}{'content-length'}, length($json), 'and the right Content-Length');

my $form = 'name=Front+Desk&pairing_code=555%20002&x=%E2%98%95';
$r = http($port, 'POST', '/echo', body => $form, headers => { 'Content-Type' => 'application/x-www-form-urlencoded' });
is($r->{status}, 200, 'a guarded form request reaches /echo');
is(($r->{json} // {})->{body}, $form, 'the upstream gets the form body byte for byte');

$r = http($port, 'POST', '/echo', body => $json, chunked => 1, headers => { 'Content-Type' => 'application/json' });
is($r->{status}, 200, 'a chunked guarded request reaches /echo');
is(($r->{json} // {})->{body}, $want, 'and the upstream gets the whole body');

# --- key_required and skipped policies -------------------------------------

$up->reset;
$r = http_post_json($port, '/strict/pair', { name => 'no code' }, headers => { 'X-Forwarded-For' => '10.0.4.1' });
is($r->{status}, 400, 'key_required: a body without the field is refused with 400');
is_deeply($r->{json}, { error => 'key_required' }, 'with the key_required body');
$r = http_post_json($port, '/strict/pair', { pairing_code => '' }, headers => { 'X-Forwarded-For' => '10.0.4.1' });
is($r->{status}, 400, 'key_required: an empty field is refused too');
$r = http($port, 'POST', '/strict/pair', headers => { 'X-Forwarded-For' => '10.0.4.1' }, body => '');
is($r->{status}, 400, 'key_required: so is an empty body');
is($up->count, 0, 'none of them reached the upstream');
is(http_post_json($port, '/strict/pair', { pairing_code => '555003' })->{status}, 404,
    'key_required: a body with the field goes through');

@st = map { http_post_json($port, '/lenient/pair', { name => "no code $_" })->{status} } 1 .. 6;
is_deeply(\@st, [(400) x 6], 'without key_required a request without the field skips the policy (six upstream 400s, no lock)');
is($up->count('/api/provision/pair'), 7, 'all of them reached the upstream');
@st = map { http_post_json($port, '/lenient/pair', { pairing_code => '' })->{status} } 1 .. 4;
is_deeply(\@st, [(400) x 4], 'an empty field is skipped the same way');

done();
