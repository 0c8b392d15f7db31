# A reply that reaches the socket during a long event-loop iteration is a
# reply, not a timeout. nginx expires timers after an iteration's events:
# when an iteration runs a handler that blocks (here echo_blocking_sleep;
# in life a blocking module, a starved or swapped worker), a command's timer
# can be due at its end while the reply already waits in the socket. The
# client reads what is there before it calls the command timed out (with
# EPOLLRDHUP, nginx's recv answers "again" without reading once a read came
# back short, until epoll reports more: the client says the amount is
# unknown). Timed out, the worker would drop its connection and decide
# without Redis (503 under store_down deny).
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use PgTest;

my $echo = '/usr/lib/nginx/modules/ngx_http_echo_module.so';
plan skip_all => "$echo is missing (libnginx-mod-http-echo)" unless -f $echo;

my $redis = start_redis();
my $up    = start_upstream();
# A one-worker nginx with the echo module: timeout=TIMEOUT, policies ip
# ($http_x_client) and own ($remote_addr) at /ok and /own, /noop, and a
# blocking location per entry of `blocks` (name => seconds).
sub edge (%o) {
    my $blocks = join "\n", map { "        location = /$_ { echo_blocking_sleep $o{blocks}{$_}; echo blocked; }" }
        sort keys %{ $o{blocks} };
    my $conf = <<'CONF' =~ s/%%TIMEOUT%%/$o{timeout}/r =~ s/%%BLOCKS%%/$blocks/r;
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=%%TIMEOUT%%;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy ip key=$http_x_client max_failures=3 window=60s lockout=60s;
    pairguard_policy own key=$remote_addr max_failures=3 window=60s lockout=60s;
    pairguard_store_down deny;
    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }
    server {
        listen 127.0.0.1:%%PORT%%;
        keepalive_timeout 60s;
        location = /ok { pairguard ip; pairguard_failure_status 404; proxy_pass http://backend/status/200; }
        location = /own { pairguard own; pairguard_failure_status 404; proxy_pass http://backend/status/200; }
        location = /noop { return 204; }
%%BLOCKS%%
    }
}
CONF
    return start_nginx($conf, redis => $redis, upstream => $up, workers => 1, extra_modules => [$echo]);
}
my $ng = edge(timeout => '300ms', blocks => { block1 => 0.35, block2 => 1.5 });

# a connection the worker has accepted and served once (its next request is
# read at once)
sub kept ($port = $ng->port) {
    my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Proto => 'tcp') or die "connect: $!";
    print $c "GET /noop HTTP/1.1\r\nHost: x\r\n\r\n";
    my $r = '';
    sysread($c, $r, 4096);
    return $c;
}
sub status_of ($c) { http_answer($c)->{status} }

# Rounds 1 and 2 key on a header: the reserve is a script call. Rounds 3
# and 4 key on the client's address (one source address per request), with
# Redis' clock just learned: the reserve is a SET, answered late, so
# released and sent again to the script.
my $cluster = ($ENV{PG_REDIS_MODE} // '') eq 'cluster';
for my $i (1 .. 4) {
    my ($k1, $k2) = (kept(), kept());
    my ($path, %who) = $i <= 2 ? ('/ok', headers => { 'X-Client' => "late$i" }) : ('/own', from => "127.0.4.$i");
    my %warm = $i <= 2 ? (headers => { 'X-Client' => "warm$i" }) : (from => "127.0.5.$i");
    is(http_get($ng->port, $path, %warm)->{status}, 200, "round $i ($path): Redis answers");
    my $mark = $ng->log_mark;
    # Redis holds the reserve 1 s; the worker is busy 0.35 s, then 1.5 s in
    # the next iteration, whose end finds the reserve's timer (300 ms) due
    # and its reply (at 1 s) in the socket
    my @cmds = $redis->monitored(sub {
        $redis->cmd('CLIENT', 'PAUSE', 1000, 'WRITE');
        my $a = http_send($ng->port, 'GET', $path, %who);
        sleep 0.1;
        http_send($k1, 'GET', '/block1');
        sleep 0.1;
        http_send($k2, 'GET', '/block2');
        is(status_of($a), 200, "  a reply read at the end of a long iteration is the reserve's answer: allowed");
        status_of($_) for $k1, $k2;
    });
    my $sets = grep { $_->[0] eq 'SET' } @cmds;
    is($sets, $i <= 2 || $cluster ? 0 : 1,
       $i <= 2 ? '  the reserve was a script call' : $cluster ? '  (a cluster: the script\'s)' : '  the reserve was a SET')
        or diag explain \@cmds;
    my $log = $ng->log_since($mark);
    unlike($log, qr/command timed out/, '  no "command timed out"');
    unlike($log, qr/unavailable/, '  Redis not given up');
}
ok(wait_until(sub { scalar(my @k = $redis->guard_keys) == 0 }, timeout => 3), 'every reservation settled');

# A reserve made early in a long iteration: its batch is sent at the
# iteration's end, after a handler that blocked 1.5 s (longer than the 1 s
# timeout). Its timer counts from the sending, not from nginx's cached clock
# of the iteration's start: on that clock it would be due as soon as the
# next iteration reads anything (here a request that came during the block)
# and Redis, paused until 2 s, would not have answered yet. The worker is
# stopped while the two first requests arrive, so that one iteration reads
# both, the guarded one first.
{
    my $ng3 = edge(timeout => '1s', blocks => { block => 1.5 });
    my ($worker) = PgTest::_children_of($ng3->pid);
    my ($k1, $k2, $k3) = map { kept($ng3->port) } 1 .. 3;
    is(http_get($ng3->port, '/ok', headers => { 'X-Client' => 'early-warm' })->{status}, 200, 'Redis answers');
    stop_process($worker);
    http_send($k1, 'GET', '/ok', headers => { 'X-Client' => 'early' });
    sleep 0.05;
    http_send($k2, 'GET', '/block');
    sleep 0.1;
    $redis->cmd('CLIENT', 'PAUSE', 2000, 'WRITE');
    kill 'CONT', $worker;
    sleep 0.5;
    http_send($k3, 'GET', '/noop');    # read by the iteration after the block
    is(status_of($k1), 200, 'a reserve whose batch left after a 1.5 s handler: allowed');
    is(status_of($k2), 200, '  (the handler ran)');
    is(status_of($k3), 204, '  (and the request after it)');
    my $log = $ng3->error_log;
    unlike($log, qr/command timed out/, '  its timer counted from the sending: no "command timed out"');
    unlike($log, qr/unavailable/, '  Redis not given up');
}

# The same at the connection's start: the handshake's answer (the script's
# SCRIPT LOAD) reaches the socket during a long iteration at whose end the
# connect timer (300 ms x 5 = 1.5 s) is due. The timer reads what is there
# before it gives the connection up. A new worker whose Redis answers its
# handshake at 3 s (CLIENT PAUSE): it blocks 2 s (nginx's clock stands
# still meanwhile), then 2 s more in the next iteration, whose clock is
# past the timer and during which Redis answers.
{
    $redis->cmd('CLIENT', 'PAUSE', 3000, 'ALL');
    my $paused = time;
    my $ng2 = edge(timeout => '300ms', blocks => { block => 2 });
    my ($k1, $k2) = (kept($ng2->port), kept($ng2->port));
    my $began = time - $paused;
    SKIP: {
    # the connect timer (1.5 s) must be due at the end of the first block,
    # and Redis (3 s) must answer during the second
    skip sprintf('nginx took %.1f s to start: the blocks would not straddle the timer', $began), 4 if $began > 1.2;
    http_send($k1, 'GET', '/block');
    sleep 0.1;
    http_send($k2, 'GET', '/block');
    my @st = map { status_of($_) } $k1, $k2;
    is("@st", '200 200', 'a new worker blocked twice 2 s while Redis answered its handshake at 3 s');
    note sprintf 'the blocks began %.2f s after the pause', $began;
    is(http_get($ng2->port, '/ok', headers => { 'X-Client' => 'after-block' })->{status}, 200,
       '  a guarded request right after: allowed');
    my $log = $ng2->error_log;
    unlike($log, qr/connect timed out/, '  the handshake\'s answer was read: no "connect timed out"');
    unlike($log, qr/unavailable/, '  Redis not given up');
    }
}
done();
