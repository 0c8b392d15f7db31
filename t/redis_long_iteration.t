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
use POSIX ();
use Time::HiRes qw(sleep time);
use PgTest;
use PgRedis;

my $echo = '/usr/lib/nginx/modules/ngx_http_echo_module.so';
plan skip_all => "$echo is missing (libnginx-mod-http-echo)" unless -f $echo;

my $redis = start_redis();
my $up    = start_upstream();
# A one-worker nginx with the echo module: timeout=TIMEOUT, the Redis
# STORE (default: the test's own), policies ip
# ($http_x_client) and own ($remote_addr) at /ok and /own, /noop, and a
# blocking location per entry of `blocks` (name => seconds).
sub edge (%o) {
    my $blocks = join "\n", map { "        location = /$_ { echo_blocking_sleep $o{blocks}{$_}; echo blocked; }" }
        sort keys %{ $o{blocks} };
    my $store = $o{store} // '127.0.0.1:%%REDIS_PORT%%';
    my $conf = <<'CONF' =~ s/%%STORE%%/$store/r =~ s/%%TIMEOUT%%/$o{timeout}/r =~ s/%%BLOCKS%%/$blocks/r;
http {
    %%HTTP_COMMON%%
    pairguard_redis %%STORE%% timeout=%%TIMEOUT%%;
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
    blocked_twice($ng2, $paused, 'Redis answered its handshake', qr/connect timed out/,
                  'the handshake\'s answer was read: no "connect timed out"');
}

# A new worker ($ng), whose setup's answer comes 3 s after $t0, blocks 2 s
# twice in a row: the setup timer (1.5 s) is due at the end of the second
# block, during which the answer came. Both blocks are answered, a guarded
# request right after is allowed, and the log holds neither $given_up nor
# "unavailable". Skipped when nginx started too late for the blocks to
# straddle the timer.
sub blocked_twice ($ng, $t0, $what, $given_up, $given_up_name) {
    my ($k1, $k2) = (kept($ng->port), kept($ng->port));
    my $began = time - $t0;
    SKIP: {
    skip sprintf('nginx took %.1f s to start: the blocks would not straddle the timer', $began), 4 if $began > 1.2;
    http_send($k1, 'GET', '/block');
    sleep 0.1;
    http_send($k2, 'GET', '/block');
    my @st = map { status_of($_) } $k1, $k2;
    is("@st", '200 200', "a new worker blocked twice 2 s while $what at 3 s");
    note sprintf 'the blocks began %.2f s after the pause', $began;
    is(http_get($ng->port, '/ok', headers => { 'X-Client' => "after $what" })->{status}, 200,
       '  a guarded request right after: allowed');
    my $log = $ng->error_log;
    unlike($log, $given_up, "  $given_up_name");
    unlike($log, qr/unavailable/, '  Redis not given up');
    }
}

# The same for the question to a sentinel: its answer reaches the socket
# during the second long iteration, at whose end the ask timer (300 ms x 5)
# is due; the timer reads it before it moves on. Only one sentinel is named:
# given up, the worker would have no sentinel left and decide without Redis
# (503 under deny) until its backoff ends.
SKIP: {
    skip 'redis-cli or openssl missing', 4 unless have_redis_cli();
    my $s = sentinel_set(master_name => 'pg');
    my ($sport) = $s->sentinel_ports;
    my $spid = $s->{pids}{'sentinel-0'} or die 'no pid for sentinel-0';
    stop_process($spid);
    my $stopped = time;
    # the sentinel answers at 3 s (a child wakes it: the test reads answers)
    my $waker = fork // die "fork: $!";
    if (!$waker) {
        my $left = 3 - (time - $stopped);
        sleep($left) if $left > 0;
        kill 'CONT', $spid;
        POSIX::_exit(0);
    }
    my $ng4 = edge(timeout => '300ms', blocks => { block => 2 }, store => "sentinel=127.0.0.1:$sport master=pg");
    blocked_twice($ng4, $stopped, 'its sentinel answered', qr/no sentinel knows the master/,
                  'the sentinel was not given up');
    waitpid($waker, 0);
}

# The same for the cluster's slot map: its answer reaches the socket during
# the second long iteration, at whose end the map timer (300 ms x 5) is due;
# the timer reads it before it gives the node up. The seed is a one-node
# cluster behind a relay that holds every answer on a connection from the
# moment it carried CLUSTER SLOTS until 3 s; the map then names the node's
# own port, which the worker uses for its commands. Given up, the seed's
# connection would be closed and the store left unavailable (503 under
# deny) until a new connection had read the map.
{
    my $node = do { local $ENV{PG_REDIS_MODE} = 'cluster'; start_redis() };
    my $start = time;
    my ($relay_port, $relay) = hold_after_slots($node->port, $start + 3);
    my $ng5 = edge(timeout => '300ms', blocks => { block => 2 }, store => "cluster=127.0.0.1:$relay_port");
    blocked_twice($ng5, $start, 'the cluster answered its CLUSTER SLOTS', qr/CLUSTER SLOTS timed out|cannot read the cluster map/,
                  'the node was not given up');
    $ng5->stop;
    kill 'TERM', $relay;
    waitpid($relay, 0);
}

# A TCP relay to 127.0.0.1:$to in a child process: what the server answers
# on a connection after the client sent CLUSTER SLOTS on it is held until
# the time $until. Returns (its port, its pid).
sub hold_after_slots ($to, $until) {
    my $l = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 16, ReuseAddr => 1)
        or die "listen: $!";
    my $port = $l->sockport;
    my $pid = fork // die "fork: $!";
    if ($pid) {
        close $l;
        return ($port, $pid);
    }
    eval { relay($l, $to, $until) };
    POSIX::_exit(0);
}

sub relay ($l, $to, $until) {
    require IO::Select;
    my $sel = IO::Select->new($l);
    my %peer;    # fileno => [its socket, the other, whether it is the client]
    my %held;    # client fileno => what the server answered since SLOTS
    my %asked;   # client fileno => SLOTS seen
    $SIG{TERM} = sub { POSIX::_exit(0) };
    while (1) {
        for my $fh ($sel->can_read(0.02)) {
            if ($fh == $l) {
                my $c = $l->accept or next;
                my $u = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $to) or do { close $c; next };
                $peer{ fileno $c } = [$c, $u, 1];
                $peer{ fileno $u } = [$u, $c, 0];
                $sel->add($c, $u);
                next;
            }
            my ($me, $other, $is_client) = @{ $peer{ fileno $fh } };
            my $n = sysread($fh, my $buf, 65536);
            if (!$n) {
                $sel->remove($me, $other);
                delete @peer{ fileno $me, fileno $other };
                delete @asked{ fileno $me, fileno $other };
                delete @held{ fileno $me, fileno $other };
                close $me;
                close $other;
                next;
            }
            if ($is_client) {
                # the command (a script's text may say "slots")
                $asked{ fileno $me } = 1 if $buf =~ /\*2\r\n\$7\r\nCLUSTER\r\n\$5\r\nSLOTS\r\n/i;
                syswrite($other, $buf);
            } elsif ($asked{ fileno $other } && (time < $until || exists $held{ fileno $other })) {
                # (held: in order behind what is held)
                $held{ fileno $other } .= $buf;
            } else {
                syswrite($other, $buf);
            }
        }
        if (time >= $until) {
            for my $fd (keys %held) {
                syswrite($peer{$fd}[0], delete $held{$fd}) if $peer{$fd};
            }
        }
    }
}
done();
