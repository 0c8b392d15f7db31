# A guarded request whose client goes away while its reserve is on its way to
# Redis never reaches the upstream: what Redis reserved for it is released at
# once (neutral), not held for the reservation's 60 s. Otherwise a client
# that opens requests and hangs up (or resets HTTP/2 streams) would keep a
# victim's key busy (429) without a single failure counted. The same when
# Redis' answer and the hang-up are read in one pass of the event loop.
#
# A client that goes away after its attempt was allowed counts a failure
# only if something may have acted on the attempt: not while nginx still
# read its body or connected to the upstream; yes when a mirror carried it
# to the application, or an error_page location's own handler had it after
# a reservation.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use PgTest;

# an upstream whose connect never completes: a listener whose accept queue
# is full and which never accepts (nginx's connect waits)
my $hang_port = hanging_port();

my $redis = start_redis();
my $up    = start_upstream();
my $conf  = <<'CONF' =~ s/%%HANG_PORT%%/$hang_port/gr;
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=5s;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy dev key=$http_x_device max_failures=1 window=30s lockout=30s;
    pairguard_policy acct key=$http_x_account max_failures=2 window=30s lockout=30s;
    pairguard_policy user key=$http_x_user max_failures=2 window=30s lockout=30s;
    pairguard_pairing_policy platforms=telegram;
    resolver 127.0.0.1:%%HANG_PORT%%;
    resolver_timeout 300ms;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }
    upstream hanging { server 127.0.0.1:%%HANG_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /claim {
            pairguard dev;
            pairguard acct;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/404;
        }
        location = /post {
            pairguard user;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/404;
        }
        # the connect hangs: nothing reaches an upstream
        location = /connecting {
            pairguard user;
            pairguard_failure_status 404;
            proxy_connect_timeout 30s;
            proxy_pass http://hanging/status/404;
        }
        # the same, but a mirror carries the request to the application
        location = /mirrored {
            pairguard user;
            pairguard_failure_status 404;
            mirror /mirror;
            proxy_connect_timeout 30s;
            proxy_pass http://hanging/status/404;
        }
        location = /mirror {
            internal;
            proxy_pass http://backend/status/404;
        }
        # proxied, but the upstream's name never resolves (502 before any
        # upstream attempt), then on to a handler that is not an upstream
        # (here an endpoint of this module, waiting on Redis)
        location = /unresolved {
            pairguard user;
            pairguard_failure_status 404;
            error_page 502 = @endpoint;
            proxy_pass http://unresolvable.invalid$request_uri;
        }
        location @endpoint {
            pairguard_pairing pending;
        }
        # the same unresolvable upstream, unguarded, then on to a guarded
        # location whose own connect hangs: nothing was reserved before
        location = /unresolved-open {
            error_page 502 = @guarded_hanging;
            proxy_pass http://unresolvable.invalid$request_uri;
        }
        location @guarded_hanging {
            pairguard user;
            pairguard_failure_status 404;
            proxy_connect_timeout 30s;
            proxy_pass http://hanging;
        }
        location = /ok {
            pairguard dev;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/200;
        }
    }
}
CONF
my $ng = start_nginx($conf, redis => $redis, upstream => $up, workers => 1);

# the worker's Redis connection is up (a success leaves no key)
is(http_get($ng->port, '/ok', headers => { 'X-Device' => 'warm' })->{status}, 200, 'warm-up');
ok(wait_until(sub { scalar(my @k = $redis->guard_keys) == 0 }, timeout => 3), 'Redis holds no key');
$up->reset;

# Redis holds every command for a moment: the reserves stay in flight while
# their clients hang up
sub hang_up_while_in_flight (@headers) {
    my $paused = time;
    $redis->cmd('CLIENT', 'PAUSE', 1500, 'ALL');
    my @socks;
    for my $h (@headers) {
        my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port, Proto => 'tcp')
            or die "connect: $!";
        my $hdrs = join '', map { "$_: $h->{$_}\r\n" } sort keys %$h;
        print $sock "GET /claim HTTP/1.1\r\nHost: localhost\r\n${hdrs}Connection: close\r\n\r\n";
        push @socks, $sock;
    }
    sleep 0.2;
    close $_ for @socks;
    # nginx notices the hang-ups (499) while Redis is still paused
    state $seen = 0;
    my $noticed = wait_until(sub { (() = $ng->access_log =~ /" 499 /g) >= $seen + @headers }, timeout => 0.8);
    $seen += @headers;
    my $during = time - $paused < 1.5;
    sleep 1.5 - (time - $paused) + 0.2 if time - $paused < 1.7;
    return $noticed && $during;
}

my $calls = $redis->calls('evalsha');
ok(hang_up_while_in_flight({ 'X-Device' => 'victim', 'X-Account' => 'alice' }),
    'a client hung up while its reserve waited for Redis');
ok(wait_until(sub { $redis->calls('evalsha') >= $calls + 2 }, timeout => 3),
    '  the reserve had been sent (and was answered), then a release went out');
ok(wait_until(sub { scalar(my @k = $redis->guard_keys) == 0 }, timeout => 3),
    'its reservation was released: Redis holds no key for it')
    or diag explain [ map { [ $_, $redis->cmd('GET', $_), $redis->cmd('PTTL', $_) ] } $redis->guard_keys ];
is($up->count, 0, 'nothing reached the upstream');

my $r = http_get($ng->port, '/claim', headers => { 'X-Device' => 'victim', 'X-Account' => 'alice' });
is($r->{status}, 404, 'the next guess on the key is not refused as busy (max_failures=1): it reaches the upstream');
is($up->count('/status/404'), 1, '  once');
# and it counts: the key locks (the released reservation took nothing away)
is(http_get($ng->port, '/claim', headers => { 'X-Device' => 'victim', 'X-Account' => 'alice' })->{status}, 429,
    '  and counts as the key\'s one failure: the next is refused');

# several at once, over two policies: all released, and the earlier
# guess's keys (the locked device, alice's one failure) left as they were
$up->reset;
ok(hang_up_while_in_flight(map { { 'X-Device' => "d$_", 'X-Account' => 'bob' } } 1 .. 3),
    'three clients hung up while their reserves waited');
ok(wait_until(sub { scalar(my @k = $redis->guard_keys) == 2 }, timeout => 3),
    'their reservations were released: only the earlier guess\'s two keys are left')
    or diag(join " ", map { "$_:" . $redis->cmd("TYPE", $_) } $redis->guard_keys);
my @st = map { http_get($ng->port, '/claim', headers => { 'X-Device' => "d$_", 'X-Account' => 'bob' })->{status} } 1 .. 3;
is("@st", '404 404 429', 'bob\'s account (max_failures=2) still has its whole budget: two guesses, then locked');
is($up->count, 2, '  two reached the upstream');

# Redis' answer (allowed) and the hang-up read in the same pass of the
# worker's loop, Redis' first: the verdict is made but not yet carried out
# when the request goes; its reservation is released all the same
$up->reset;
my $nkeys = () = $redis->guard_keys;
my ($worker) = $ng->worker_pids;
$redis->cmd('CLIENT', 'PAUSE', 700, 'ALL');
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port, Proto => 'tcp') or die "connect: $!";
print $sock "GET /claim HTTP/1.1\r\nHost: localhost\r\nX-Device: same-pass\r\nX-Account: dave\r\nConnection: close\r\n\r\n";
sleep 0.3;               # the reserve is sent, Redis holds it
kill 'STOP', $worker;    # the worker sleeps through Redis' answer
sleep 0.8;               # the pause ends, the answer waits in the worker's socket
close $sock;             # then the client hangs up
sleep 0.1;
kill 'CONT', $worker;
ok(wait_until(sub { $ng->access_log =~ /" 499 [^\n]*\n\z/ }, timeout => 3), 'answered and hung up in one pass: the hang-up is seen (499)');
is($up->count, 0, '  nothing reached the upstream');
ok(wait_until(sub { scalar(my @k = $redis->guard_keys) == $nkeys }, timeout => 3),
    '  and its reservation was released: no key of its own is left')
    or diag(join " ", $redis->guard_keys);
is(http_get($ng->port, '/claim', headers => { 'X-Device' => 'same-pass', 'X-Account' => 'dave' })->{status}, 404,
    '  the next guess on the key (max_failures=1) is not refused as busy');

# allowed, then gone while nginx still read the body it was to proxy: the
# upstream never received the attempt, so it counts nothing (a client on a
# bad network does not lock its account); one the upstream received does
# count (t/guard_burst.t)
$up->reset;
for my $i (1 .. 3) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port, Proto => 'tcp') or die "connect: $!";
    print $s "POST /post HTTP/1.1\r\nHost: localhost\r\nX-User: erin\r\nContent-Length: 100\r\n\r\n0123456789";
    sleep 0.2;
    close $s;
}
ok(wait_until(sub { (() = $ng->access_log =~m{"POST /post HTTP/1.1" 400 }g) >= 3 }, timeout => 3),
    'three clients went away in the middle of their bodies (logged 400, nothing answered)');
is($up->count, 0, '  none reached the upstream');
@st = map { http($ng->port, 'POST', '/post', headers => { 'X-User' => 'erin' }, body => 'x')->{status} } 1 .. 3;
is("@st", '404 404 429', '  and they counted nothing: the account still has its two guesses (max_failures=2)');

# gone while nginx still connected to the upstream: nothing reached it
$up->reset;
for my $i (1 .. 3) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port, Proto => 'tcp') or die "connect: $!";
    print $s "GET /connecting HTTP/1.1\r\nHost: localhost\r\nX-User: fay\r\n\r\n";
    sleep 0.3;
    close $s;
}
ok(wait_until(sub { (() = $ng->access_log =~ m{"GET /connecting HTTP/1.1" 499 }g) >= 3 }, timeout => 3),
    'three clients went away while nginx connected to the upstream (499)');
@st = map { http($ng->port, 'POST', '/post', headers => { 'X-User' => 'fay' }, body => 'x')->{status} } 1 .. 3;
is("@st", '404 404 429', '  they counted nothing: fay still has her two guesses');

# gone while nginx still connected, but a mirror had carried the guess to the
# application: each counts
$up->reset;
for my $i (1 .. 2) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port, Proto => 'tcp') or die "connect: $!";
    print $s "GET /mirrored HTTP/1.1\r\nHost: localhost\r\nX-User: gus\r\n\r\n";
    wait_until(sub { $up->count('/status/404') >= $i }, timeout => 3);
    close $s;
}
is($up->count('/status/404'), 2, 'two guesses reached the application through a mirror, their clients gone before nginx reached the main upstream');
ok(wait_until(sub { (() = $ng->access_log =~ m{"GET /mirrored HTTP/1.1" 499 }g) >= 2 }, timeout => 3), '  (499)');
is(http($ng->port, 'POST', '/post', headers => { 'X-User' => 'gus' }, body => 'x')->{status}, 429,
    '  they counted: gus (max_failures=2) is locked');

# proxied in one location without a byte reaching an upstream (the name did
# not resolve), then carried on by another location's own handler: the
# client's hang-up there counts, whatever the first upstream saw
for my $i (1 .. 2) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port, Proto => 'tcp') or die "connect: $!";
    print $s "GET /unresolved HTTP/1.1\r\nHost: localhost\r\nX-User: hal\r\n\r\n";
    sleep 0.1;                                       # reserved; resolving
    $redis->cmd('CLIENT', 'PAUSE', 1200, 'ALL');     # the endpoint will wait
    sleep 0.6;                                       # 502, error_page, the endpoint asks Redis
    close $s;
    sleep 0.9;
}
ok(wait_until(sub { (() = $ng->access_log =~ m{"GET /unresolved HTTP/1.1" 499 }g) >= 2 }, timeout => 3),
    'two clients went away while the error_page location\'s own handler worked (499)');
sleep 0.3;
is(http($ng->port, 'POST', '/post', headers => { 'X-User' => 'hal' }, body => 'x')->{status}, 429,
    '  they counted: hal (max_failures=2) is locked');

# unguarded and proxied first (the name did not resolve), then reserved and
# connecting in the guarded location: the hang-up there reached no one
for my $i (1 .. 3) {
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $ng->port, Proto => 'tcp') or die "connect: $!";
    print $s "GET /unresolved-open HTTP/1.1\r\nHost: localhost\r\nX-User: ida\r\n\r\n";
    sleep 0.7;    # 502 after 300 ms, error_page, reserved, connecting
    close $s;
}
ok(wait_until(sub { (() = $ng->access_log =~ m{"GET /unresolved-open HTTP/1.1" 499 }g) >= 3 }, timeout => 3),
    'three clients went away while the error_page location connected to its upstream (499)');
@st = map { http($ng->port, 'POST', '/post', headers => { 'X-User' => 'ida' }, body => 'x')->{status} } 1 .. 3;
is("@st", '404 404 429', '  they counted nothing (the first location had reserved nothing): ida still has her two guesses');

done();
