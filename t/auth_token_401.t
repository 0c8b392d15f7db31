# Tokens say 401 (SPEC section 4, RFC 6750, issue 8 item 9): a bad, expired
# or revoked bearer token gets 401 with `WWW-Authenticate: Bearer
# error="invalid_token"` (on a Haystack location, the Haystack challenge
# `WWW-Authenticate: HELLO`), so that clients log in again. The Haystack
# handshakeToken handed out at HELLO stays the token of the exchange: a
# client that keeps sending it logs in, and each step still works once. A
# failed SCRAM proof is a bare 403.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use PgTest;
use PgAuth;

my $redis = start_redis();
my $up    = start_upstream();
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=500ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_auth_policy session_ttl=%%TTL%% max_failures=50;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /auth/login   { pairguard_auth password; }
        location = /auth/session { pairguard_auth session; }
        location = /app {
            pairguard_auth_require;
            proxy_pass http://backend/echo;
        }
        location = /api/about {
            pairguard_auth haystack;
            proxy_pass http://backend/echo;
        }
    }
}
CONF
# info, not debug: nginx's own debug log prints whole request headers,
# Authorization included (README, security notes); the module's lines are
# what is checked for secrets here
my $na = start_nginx($conf, redis => $redis, upstream => $up, vars => { ttl => '1h' }, log_level => 'info');
my $nb = start_nginx($conf, redis => $redis, upstream => $up, vars => { ttl => '1s' }, log_level => 'info');
my ($A, $B) = ($na->port, $nb->port);

my $PW = 'alice pass';
my ($rc, undef, $err) = ctl_auth($redis, "$PW\n", qw(user add alice --password-stdin));
is($rc, 0, 'pairguardctl adds alice') or diag($err);

sub login ($port) { http_post_json($port, '/auth/login', { user => 'alice', password => $PW })->{json}{token} // '' }
sub with ($t) { (headers => { Authorization => "Bearer $t" }) }
# "status WWW-Authenticate body"
sub answer ($r) { join ' | ', $r->{status}, $r->{headers}{'www-authenticate'} // '-', $r->{body} }

my $INVALID = '401 | Bearer error="invalid_token" | {"error":"invalid_token"}';

is(answer(http_get($A, '/app')), '401 | Bearer | {"error":"unauthorized"}', 'no token: 401, WWW-Authenticate: Bearer');
is(answer(http_get($A, '/app', with('x' x 60))), $INVALID, 'a malformed token: 401 Bearer error="invalid_token"');
my $t = login($A);
ok($t, 'alice logs in');
my $forged = substr($t, 0, 17) . ('A' x 43);
is(answer(http_get($A, '/app', with($forged))), $INVALID, 'a token nobody issued: the same 401');
is(http_get($A, '/app', with($t))->{status}, 200, 'her token passes');

is(http($A, 'DELETE', '/auth/session', with($t))->{status}, 200, 'she logs out');
is(answer(http_get($A, '/app', with($t))), $INVALID, 'the revoked token: the same 401');
is(answer(http_get($A, '/auth/session', with($t))), $INVALID, '  also on the session endpoint');
is(answer(http($A, 'POST', '/auth/session', with($t))), $INVALID, '  and refreshing it');

my $short = login($B);
is(http_get($B, '/app', with($short))->{status}, 200, 'a 1 s session passes at first');
sleep 1.3;
is(answer(http_get($B, '/app', with($short))), $INVALID, 'the expired token: the same 401');

# the Haystack location answers with its own challenge
is(answer(http_get($A, '/api/about', headers => { Authorization => "BEARER authToken=$forged" })),
   '401 | HELLO | {"error":"invalid_token"}', 'a bad token on the Haystack location: 401, WWW-Authenticate: HELLO');
is(answer(http_get($A, '/api/about', headers => { Authorization => "BEARER authToken=$t" })),
   '401 | HELLO | {"error":"invalid_token"}', '  a revoked one too');

# a client that keeps its HELLO handshakeToken (the Haystack spec's example)
my $s = haystack_login($A, '/api/about', 'alice', $PW, keep_token => 1);
is($s->{first}{status}, 401, 'client-first with the HELLO token: 401 and server-first');
is($s->{t2}, $s->{t1}, '  naming the same handshakeToken');
is($s->{final}{status}, 200, 'client-final with the HELLO token again: 200');
ok($s->{token}, '  with an authToken');
is(http_get($A, '/app', with($s->{token}))->{status}, 200, '  that pairguard_auth_require accepts');
my $again = http_get($A, '/api/about',
                     headers => { Authorization => "SCRAM handshakeToken=$s->{t1}, data=" . b64url($s->{final_msg}) });
is($again->{status}, 403, 'client-final replayed with that token: 403 (each step once)');
$again = http_get($A, '/api/about',
                  headers => { Authorization => "SCRAM handshakeToken=$s->{t1}, data=" . b64url('n,,n=alice,r=abc') });
is($again->{status}, 403, 'client-first replayed with that token: 403');

my $bad = haystack_login($A, '/api/about', 'alice', $PW, keep_token => 1, wrong_pw => 'nope');
is($bad->{final}{status} . ' "' . $bad->{final}{body} . '"', '403 ""', 'a failed SCRAM proof: a bare 403');

is(secret_seen($PW, $redis, $na, $nb), '', 'the password is in neither Redis nor any log');
is(secret_seen($s->{token}, $redis, $na, $nb), '', 'nor the token');
is(secret_seen($s->{t1}, $redis, $na, $nb), '', 'nor the handshake token');

done();
