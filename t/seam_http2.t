# The guard over HTTP/2 (cleartext, prior knowledge; t/lib/PgH2.pm): many
# streams of one connection guessing at once stay exact; a stream reset
# while its reserve waits for Redis holds nothing; a stream reset after the
# upstream got the guess still counts; a body-keyed policy reads a body that
# comes in several DATA frames.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use PgTest;
use PgH2;

my $redis = start_redis();
my $up    = start_upstream(delay_ms => 300);
my $ng    = start_nginx(<<'CONF', redis => $redis, upstream => $up, workers => 1);
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=5s;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy dev key=$http_x_device max_failures=3 window=30s lockout=30s;
    pairguard_policy one key=$http_x_device max_failures=1 window=30s lockout=30s;
    pairguard_policy user key=$pairguard_body_user max_failures=2 window=30s lockout=30s;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%% http2;
        http2_max_concurrent_streams 128;

        location = /claim {
            pairguard dev;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/404;
        }
        location = /one {
            pairguard one;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/404;
        }
        location = /login {
            pairguard user;
            pairguard_failure_status 401;
            proxy_pass http://backend/status/401;
        }
    }
}
CONF
my $port = $ng->port;

# warm-up: the worker's Redis connection is up
{
    my $h2 = PgH2->new($port);
    my $sid = $h2->request(path => '/one', headers => { 'x-device' => 'warm' });
    is($h2->wait_for(5, $sid)->{$sid}, 404, 'HTTP/2: a guarded request is answered');
    $h2->close;
}
$up->reset;

# --- 40 streams of one connection, one key --------------------------------------
{
    my $h2 = PgH2->new($port);
    my @sids = map { $h2->request(method => 'POST', path => '/claim', headers => { 'x-device' => 'lobby' }, body => '{}') } 1 .. 40;
    my $st = $h2->wait_for(10, @sids);
    my %by;
    $by{ $st->{$_} // 'none' }++ for @sids;
    note explain \%by;
    is($by{404} // 0, 3, '40 streams at once on one connection: exactly max_failures (3) reach the upstream');
    is($by{429} // 0, 37, '  every other stream is refused with 429');
    is($up->count('/status/404'), 3, '  the upstream saw three');
    my $sid = $h2->request(path => '/claim', headers => { 'x-device' => 'lobby' });
    is($h2->wait_for(5, $sid)->{$sid}, 429, '  and the key is locked');
    $h2->close;
}

# --- a stream reset while its reserve waits for Redis ---------------------------
{
    $up->reset;
    my $before = () = $redis->guard_keys;
    my $h2 = PgH2->new($port);
    my $paused = time;
    $redis->cmd('CLIENT', 'PAUSE', 1500, 'ALL');
    my @sids = map { $h2->request(path => '/one', headers => { 'x-device' => "reset-$_" }) } 1 .. 3;
    sleep 0.3;
    $h2->reset($_) for @sids;
    sleep 0.3;
    ok(time - $paused < 1.5, 'three streams reset while Redis held their reserves');
    sleep 1.5 - (time - $paused) + 0.3 if time - $paused < 1.8;
    ok(wait_until(sub { scalar(my @k = $redis->guard_keys) == $before }, timeout => 3),
        '  their reservations were released: no key is left for them')
        or diag(join ' ', $redis->guard_keys);
    is($up->count, 0, '  none reached the upstream');
    my $sid = $h2->request(path => '/one', headers => { 'x-device' => 'reset-1' });
    is($h2->wait_for(5, $sid)->{$sid}, 404, '  the next guess on such a key (max_failures=1) is not refused as busy');
    $h2->close;
}

# --- streams reset in the same write as their HEADERS: reserves queued and
# dropped in the same pass, never sent ---------------------------------------
{
    $up->reset;
    my $before = () = $redis->guard_keys;
    # the commands Redis ran for the guard (inside its scripts too)
    my $w0 = $redis->calls('set', 'getdel');
    my $h2 = PgH2->new($port);
    $h2->request(path => '/one', headers => { 'x-device' => "gone-$_" }, reset => 1) for 1 .. 5;
    # a stream after them, answered: the resets have been read by then
    my $sid = $h2->request(path => '/one', headers => { 'x-device' => 'after-resets' });
    is($h2->wait_for(5, $sid)->{$sid}, 404, 'five streams reset in the write that opened them, then one answered');
    sleep 0.3;
    is(scalar(my @k = $redis->guard_keys), $before + 1, '  only the answered stream left a key');
    cmp_ok($redis->calls('set', 'getdel') - $w0, '<=', 3, '  the reset streams\' reserves were never sent (Redis ran the answered stream\'s SET, GETDEL and SET only)');
    is($up->count, 1, '  only the answered stream reached the upstream');
    $h2->close;
}

# --- a stream reset after the upstream got the guess ----------------------------
{
    $up->reset;
    my $h2 = PgH2->new($port);
    for my $i (1 .. 3) {
        my $sid = $h2->request(path => '/claim', headers => { 'x-device' => 'hangup' });
        sleep 0.1;    # the upstream (300 ms) has the request
        $h2->reset($sid);
    }
    ok(wait_until(sub { $up->count('/status/404') >= 3 }, timeout => 3), 'three guesses reached the upstream, their streams reset');
    sleep 0.5;
    my $sid = $h2->request(path => '/claim', headers => { 'x-device' => 'hangup' });
    is($h2->wait_for(5, $sid)->{$sid}, 429, '  they counted as failures: the key (max_failures=3) is locked');
    $h2->close;
}

# --- a body-keyed policy, the body in several DATA frames -----------------------
{
    $up->reset;
    my $h2 = PgH2->new($port);
    my @st;
    for my $i (1 .. 3) {
        my $sid = $h2->request(method => 'POST', path => '/login', end => 0,
            headers => { 'content-type' => 'application/json', 'content-length' => 29 });
        $h2->data($sid, '{"user":"zed",');
        $h2->data($sid, '"password":"x"}', 1);
        push @st, $h2->wait_for(5, $sid)->{$sid} // 'none';
    }
    is("@st", '401 401 429', 'a JSON body in two DATA frames: the user is counted and locked at max_failures (2)');
    is($up->count('/status/401'), 2, '  two guesses reached the upstream');
    my $sid = $h2->request(method => 'POST', path => '/login', body => '{"user":"amy","password":"x"}',
        headers => { 'content-type' => 'application/json' });
    is($h2->wait_for(5, $sid)->{$sid}, 401, '  another user in the same connection is not locked');
    $h2->close;
}

done();
