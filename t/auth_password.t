# Password login at the edge (SPEC section 4, seed 003): `pairguard_auth
# password` checks Argon2id in nginx's thread pool and hands out a session
# token; `pairguard_auth_require` forwards requests carrying it with
# $pairguard_user. Wrong passwords, unknown users and locked callers all get
# the same 403; a weaker stored hash is upgraded; other requests keep flowing
# while hashes are computed; no password reaches Redis or a log.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use IO::Socket::INET;
use PgTest;
use PgAuth;

my $redis = start_redis();
my $up    = start_upstream();
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=500ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_auth_policy session_ttl=1h max_failures=3 lockout=3s argon2_m=%%ARGON2_M%% argon2_t=%%ARGON2_T%%;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /auth/login { pairguard_auth password; }

        location = /app {
            pairguard_auth_require;
            proxy_set_header X-Pairguard-User $pairguard_user;
            proxy_pass http://backend/echo;
        }
        location = /cheap { return 200 "cheap\n"; }
    }
}
CONF
# policy = what `user add` makes: nothing to upgrade
my $ng = start_nginx($conf, redis => $redis, upstream => $up, vars => { argon2_m => 19456, argon2_t => 2 });
my $P = $ng->port;

my $PW = 'correct horse battery staple';
my ($rc, $out, $err) = ctl_auth($redis, "$PW\n", qw(user add alice --password-stdin));
is($rc, 0, 'pairguardctl adds alice with a password') or diag($err);
($rc) = ctl_auth($redis, "other-pass\n", qw(user add bob --password-stdin));
is($rc, 0, 'and bob');

sub login ($user, $pw, %o) {
    return http_post_json($P, '/auth/login', { user => $user, password => $pw }, %o);
}
sub app ($token) {
    return http_get($P, '/app', headers => { Authorization => "Bearer $token" });
}

# --- the happy path -----------------------------------------------------------

my $r = login('alice', $PW);
is($r->{status}, 200, 'the right password logs in: 200');
like($r->{json}{token} // '', qr/^[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{43}$/, '  with a token shaped UTAG.R');
my $left = ($r->{json}{expires_at} // 0) - time;
ok($left > 3500 && $left <= 3601, '  expiring after session_ttl (1h)');
my $token = $r->{json}{token};

$r = app($token);
is($r->{status}, 200, 'the token passes pairguard_auth_require');
is($r->{json}{headers}{'x-pairguard-user'}, 'alice', '  and the upstream sees $pairguard_user = alice');

$r = http_get($P, '/app');
is($r->{status}, 401, 'no credentials: 401');
like($r->{headers}{'www-authenticate'} // '', qr/^Bearer/i, '  with WWW-Authenticate: Bearer');
is(app('x' x 60)->{status}, 401, 'a token of the wrong shape: 401');
my $forged = substr($token, 0, 17) . ('A' x 43);
is(app($forged)->{status}, 401, 'a well-shaped token nobody issued: 401');
is(http_get($P, '/app', headers => { Authorization => "Basic YWxpY2U6eA==" })->{status}, 401,
   'another scheme counts as no credentials: 401');

# --- refusals look alike ------------------------------------------------------------

my $wrong = login('alice', 'wrong', from => '127.0.0.2');
is($wrong->{status}, 403, 'a wrong password: 403');
my $unknown = login('mallory', 'whatever', from => '127.0.0.2');
is($unknown->{status}, 403, 'an unknown user: 403');
is($unknown->{body}, $wrong->{body}, '  with the very same body');
is(login('alice', '')->{status}, 400, 'an empty password is a bad request (400)');
is(http_post_json($P, '/auth/login', { password => 'x' })->{status}, 400, 'no user: 400');
is(http_get($P, '/auth/login')->{status}, 405, 'GET on the login: 405');

# bob: three wrong passwords (max_failures=3, each from another address)
# lock him for 3 s
login('bob', "nope$_", from => "127.0.0.1$_") for 1 .. 2;
my $third = login('bob', 'nope3', from => '127.0.0.13');
is($third->{status}, 403, 'the failure that locks is a 403 like the others');
my $locked = login('bob', 'other-pass', from => '127.0.0.14');
is($locked->{status}, 403, 'locked: even the right password gets 403');
is($locked->{body}, $wrong->{body}, '  with the body of a wrong password');
like($ng->error_log, qr/auth lockout start, user/, 'the lockout start is logged at notice');
sleep 3.2;
is(login('bob', 'other-pass', from => '127.0.0.3')->{status}, 200, 'after the lockout the right password works again');

# the address: failures for many users from one address lock the address
my $from = '127.0.0.9';
login("nobody$_", 'x', from => $from) for 1 .. 3;
is(login('alice', $PW, from => $from)->{status}, 403, 'an address that failed max_failures times is locked too');
is(login('alice', $PW, from => '127.0.0.10')->{status}, 200, '  other addresses are not');

# --- no password anywhere -------------------------------------------------------------

is(secret_seen($PW, $redis, $ng), '', 'the password is in neither Redis nor any log (debug level)');
is(secret_seen($token, $redis), '', 'the session token is not in Redis');
is(secret_seen(substr($token, 17), $redis), '', '  not even its random part');

# --- upgrade of a weaker hash, Argon2 in the thread pool ----------------------------------

# a node whose policy asks for more memory than `user add` used: alice's
# hash is upgraded on her next login, and every login there is slow
my $slow = start_nginx($conf, redis => $redis, upstream => $up, vars => { argon2_m => 65536, argon2_t => 3 });
my $S = $slow->port;
my $before = $redis->cmd('HGET', user_base('alice') . ':user', 'argon2');
like($before, qr/m=19456,t=2/, 'alice starts with m=19456,t=2');
$r = http_post_json($S, '/auth/login', { user => 'alice', password => $PW });
is($r->{status}, 200, 'login on a node with a stronger policy');
my $after = $redis->cmd('HGET', user_base('alice') . ':user', 'argon2');
like($after, qr/^\$argon2id\$v=19\$m=65536,t=3,p=1\$/, '  upgrades her stored hash to the policy');
is(login('alice', $PW)->{status}, 200, 'the upgraded hash verifies on the other node too');

# slow logins in flight, cheap requests answered at once
my @ports = ($S) x 3;
my $t0 = time;
my $pid = fork() // die;
if ($pid == 0) {
    http_burst(\@ports, 3, sub ($i) { { method => 'POST', path => '/auth/login', json => { user => 'alice', password => "bad$i" }, from => "127.0.1.$i" } });
    POSIX::_exit(0);
}
sleep 0.15;
my @cheap;
for (1 .. 5) {
    my $c = http_get($S, '/cheap');
    push @cheap, $c->{elapsed} // 99;
}
waitpid($pid, 0);
my $slow_total = time - $t0;
my ($max) = sort { $b <=> $a } @cheap;
ok($max < 0.25 && $max < $slow_total / 2, sprintf('cheap requests answered in %.0f ms at most while Argon2 runs (%.2f s for the slow logins)',
                       $max * 1000, $slow_total));
ok($slow_total > 0.15, '  (the slow logins really were slow)');

# a client that goes away while its hash is computed: the request waits for
# the thread, then goes quietly
for my $i (1 .. 3) {
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $S, Proto => 'tcp') or die "connect: $!";
    my $body = '{"user":"alice","password":"gone' . $i . '"}';
    print $sock "POST /auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        . 'Content-Length: ' . length($body) . "\r\nConnection: close\r\n\r\n$body";
    sleep 0.02;
    close $sock;
}
sleep 0.8;
is(http_get($S, '/cheap')->{status}, 200, 'clients that left during their Argon2 run leave the node serving');
is(http_post_json($S, '/auth/login', { user => 'bob', password => 'other-pass' }, from => '127.0.0.50')->{status}, 200,
   '  and logging in');

# --- a full queue answers 503 at once ----------------------------------------------------

my $tiny_conf = $conf;
$tiny_conf =~ s/^http \{/thread_pool pgtiny threads=1 max_queue=1;\n\nhttp {\n    pairguard_thread_pool pgtiny;/m;
my $tiny = start_nginx($tiny_conf, redis => $redis, upstream => $up, workers => 1,
                       vars => { argon2_m => 65536, argon2_t => 3 });
my @codes = http_burst([$tiny->port], 6, sub ($i) {
    { method => 'POST', path => '/auth/login', json => { user => "ghost$i", password => 'x' }, from => "127.0.2.$i" }
});
my %n;
$n{$_}++ for @codes;
ok(($n{503} // 0) >= 1, "with one thread and a queue of one, a burst of six gets 503 for the overflow (@codes)");
ok(($n{403} // 0) >= 1, '  while the queued ones are answered (403)');

done();
