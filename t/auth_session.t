# Sessions at the edge (SPEC section 4): `pairguard_auth session` reads,
# refreshes and ends a session; `pairguard_auth_require` answers from a
# per-worker cache, and every way of ending sessions (DELETE, refresh,
# pairguardctl logout, key rotation, user deletion) is seen by every node
# within one second, even by nodes that had the token cached.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use PgTest;
use PgAuth;

my $redis = start_redis();
my $up    = start_upstream();
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=500ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_auth_policy session_ttl=%%TTL%%;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /auth/login   { pairguard_auth password; }
        location = /auth/session { pairguard_auth session; }
        location = /app {
            pairguard_auth_require;
            proxy_set_header X-Pairguard-User $pairguard_user;
            proxy_pass http://backend/echo;
        }
    }
}
CONF
my $na = start_nginx($conf, redis => $redis, upstream => $up, workers => 2, vars => { ttl => '1h' });
my $nb = start_nginx($conf, redis => $redis, upstream => $up, workers => 2, vars => { ttl => '1h' });
my $nc = start_nginx($conf, redis => $redis, upstream => $up, workers => 1, vars => { ttl => '2s' });
my ($A, $B, $C) = ($na->port, $nb->port, $nc->port);

for my $u (qw(carol dave)) {
    my ($rc, undef, $err) = ctl_auth($redis, "pw-$u\n", 'user', 'add', $u, '--password-stdin');
    is($rc, 0, "pairguardctl adds $u") or diag($err);
}

sub login ($port, $user) {
    my $r = http_post_json($port, '/auth/login', { user => $user, password => "pw-$user" });
    return $r->{json}{token} // '';
}
sub bearer ($t) { { Authorization => "Bearer $t" } }
sub app ($port, $t) { http_get($port, '/app', headers => bearer($t))->{status} }
sub everywhere ($t) { join ' ', map { app($_, $t) } ($A, $B, $A, $B) }
sub within_1s ($t, $want) {
    my $t0 = time;
    my $got;
    while (time - $t0 < 1.0) {
        $got = everywhere($t);
        return 1 if $got eq join(' ', ($want) x 4);
        sleep 0.05;
    }
    diag("still $got");
    return 0;
}

# --- GET / POST / DELETE ----------------------------------------------------------

my $t = login($A, 'carol');
ok($t, 'carol logs in');
my $r = http_get($A, '/auth/session', headers => bearer($t));
is($r->{status}, 200, 'GET on the session: 200');
is($r->{json}{user}, 'carol', '  names the user');
ok(abs(($r->{json}{expires_at} // 0) - time - 3600) < 5, '  and when it expires');
$r = http_get($B, '/auth/session', headers => { Authorization => "BEARER authToken=$t" });
is($r->{status}, 200, 'the Haystack form of the header works as well, on another node');
is(http_get($A, '/auth/session')->{status}, 401, 'GET without a token: 401');
is(http_get($A, '/auth/session', headers => bearer('nonsense'))->{status}, 401, 'GET with a bad token: 401');
is(http($A, 'PUT', '/auth/session', headers => bearer($t))->{status}, 405, 'PUT: 405');

is(everywhere($t), '200 200 200 200', 'the token passes on both nodes (and is now cached there)');

$r = http($A, 'POST', '/auth/session', headers => bearer($t));
is($r->{status}, 200, 'POST refreshes the session: 200');
my $t2 = $r->{json}{token} // '';
ok($t2 && $t2 ne $t, '  with a new token');
ok(within_1s($t, 401), 'the old token is refused on every node within 1 s');
is(everywhere($t2), '200 200 200 200', 'the new one passes everywhere');
is(http($A, 'POST', '/auth/session', headers => bearer($t))->{status}, 401, 'refreshing the old token again: 401');

$r = http($B, 'DELETE', '/auth/session', headers => bearer($t2));
is($r->{status}, 200, 'DELETE ends the session: 200');
is($r->{json}{revoked}, JSON::PP::true, '  {"revoked":true}');
ok(within_1s($t2, 401), 'the deleted session is refused on every node within 1 s');
is(http($B, 'DELETE', '/auth/session', headers => bearer($t2))->{status}, 401, 'deleting it again: 401');

# --- logout, key rotation, user deletion from the CLI ------------------------------------

my @tokens = map { login($_, 'dave') } ($A, $B);
is(everywhere($tokens[0]) . ' ' . everywhere($tokens[1]), join(' ', ('200') x 8), 'dave has two sessions, cached on both nodes');
my ($rc) = ctl_auth($redis, undef, 'logout', 'dave');
is($rc, 0, 'pairguardctl logout dave');
ok(within_1s($tokens[0], 401) && within_1s($tokens[1], 401), 'both of his sessions are refused everywhere within 1 s');

$t = login($A, 'dave');
is(everywhere($t), '200 200 200 200', 'dave logs in again');
($rc, my $out, my $err) = ctl_auth($redis, undef, 'user', 'del', 'dave');
is($rc, 0, 'pairguardctl user del dave') or diag($err);
ok(within_1s($t, 401), 'his session is refused everywhere within 1 s');
is(login($A, 'dave'), '', 'and he cannot log in any more');

# --- the hot path costs no Redis call --------------------------------------------------------

sub script_calls () {
    my $info = $redis->cmd('INFO', 'commandstats');
    my $n = 0;
    $n += $1 while $info =~ /^cmdstat_(?:evalsha|eval|get):calls=(\d+)/mg;
    return $n;
}
$t = login($C, 'carol');
is(app($C, $t), 200, 'a token checked once on a one-worker node');
$redis->cmd('CONFIG', 'RESETSTAT');
my $t0 = time;
my @st = map { app($C, $t) } 1 .. 20;
my $took = time - $t0;
is("@st", join(' ', ('200') x 20), '  passes twenty more times');
my $calls = script_calls();
ok($calls <= 1 + int($took), "  with $calls Redis call(s) in ${\ sprintf('%.2f', $took)} s (the cache lives 1 s)");

# --- expiry --------------------------------------------------------------------------------

$t = login($C, 'carol');
is(app($C, $t), 200, 'a session of a node with session_ttl=2s passes');
sleep 2.2;
is(app($C, $t), 401, '  and is refused once it expired (401)');
is(http_get($C, '/auth/session', headers => bearer($t))->{status}, 401, '  GET on it: 401');

# --- nothing in clear ----------------------------------------------------------------------

$t = login($A, 'carol');
is(secret_seen($t, $redis), '', 'no token in Redis');
is(secret_seen('pw-carol', $redis, $na, $nb, $nc), '', 'no password in Redis or any log');

# --- Redis gone: auth fails closed -----------------------------------------------------------

my $cached = login($C, 'carol');
my $fresh = login($A, 'carol');
is(app($C, $cached), 200, 'a token checked just now (one-worker node)');
$redis->sigstop;
is(app($C, $cached), 200, 'Redis hangs: a token checked within the last second still passes (worker cache)');
my $r1 = http_get($B, '/app', headers => bearer($fresh));
is($r1->{status}, 503, 'a token no worker has cached: 503');
is($r1->{json}{error} // '', 'store_unavailable', '  store_unavailable');
is(http_post_json($B, '/auth/login', { user => 'carol', password => 'pw-carol' })->{status}, 503,
   'a login while Redis hangs: 503');
$redis->sigcont;

done();
