# Redis going away: pairguard_store_down local / deny / allow, a Redis that
# hangs (SIGSTOP) costs a request no more than the timeout, the outage is
# logged once per worker, and the module finds Redis again by itself.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=100ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_store_down %%MODE%%;
    pairguard_policy device key=$http_x_device max_failures=3 window=30s lockout=30s;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /claim {
            pairguard device;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/404;
        }

        location = /ok {
            pairguard device;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/200;
        }

        location = /free {
            proxy_pass http://backend/status/200;
        }
    }
}
CONF
my %ng = map { $_ => start_nginx($conf, redis => $redis, upstream => $up, workers => 2, vars => { MODE => $_ }) }
    qw(local deny allow);
my $rport = $redis->port;
my $seq = 0;

sub claim ($mode, $device, $path = '/claim') {
    return http_get($ng{$mode}->port, $path, headers => { 'X-Device' => $device }, timeout => 5);
}
sub lines_since ($ng, $mark, $re) { my @l = grep { /$re/ } split /\n/, $ng->log_since($mark); scalar @l }
# The store as configured: under PG_REDIS_MODE=cluster (t/lib/PgTest.pm) the
# directive says cluster=127.0.0.1:P, and so do its lines.
my $store = (($ENV{PG_REDIS_MODE} // '') eq 'cluster' ? 'cluster=' : '') . "127\\.0\\.0\\.1:$rport";
my $down_re = qr/\[error\].*pairguard: redis $store unavailable \(.+\), store_down (local|deny|allow)/;
my $up_re   = qr/\[notice\].*pairguard: redis $store available/;

# Sends guarded requests with fresh keys until one shows up in Redis.
sub redis_used_again ($mode, $timeout) {
    return wait_until(sub {
        # a failing probe leaves its counted failure in Redis (a success
        # would settle by deleting the key again)
        claim($mode, 'probe-' . ++$seq);
        $redis->cmd('DBSIZE') > 0;
    }, timeout => $timeout, interval => 0.2);
}

# --- Redis up ------------------------------------------------------------------

for my $mode (qw(local deny allow)) {
    is(claim($mode, "start-$mode")->{status}, 404, "$mode node: a guarded request goes through while Redis is up");
}
ok($redis->cmd('DBSIZE') > 0, 'the counters live in Redis');

# --- Redis stopped -----------------------------------------------------------------

my %mark = map { $_ => $ng{$_}->log_mark } keys %ng;
$redis->stop;
sleep 0.2;

my @st = map { claim('local', 'down-1')->{status} } 1 .. 3;
is_deeply(\@st, [404, 404, 404], 'store_down local: three failures reach the upstream');
my $r = claim('local', 'down-1');
is($r->{status}, 429, 'store_down local: the fourth is refused (counted in shared memory, across workers)');
is(($r->{json} // {})->{error}, 'too_many_attempts', 'store_down local: with the usual body');
is(claim('local', 'down-2')->{status}, 404, 'store_down local: another key still goes through');

$up->reset;
$r = claim('deny', 'down-3');
is($r->{status}, 503, 'store_down deny: a guarded request gets 503');
is_deeply($r->{json}, { error => 'store_unavailable' }, 'store_down deny: with the store_unavailable body');
is($up->count, 0, 'store_down deny: the upstream was not contacted');
is(http_get($ng{deny}->port, '/free')->{status}, 200, 'store_down deny: an unguarded location still answers');

@st = map { claim('allow', 'down-4')->{status} } 1 .. 6;
is_deeply(\@st, [(404) x 6], 'store_down allow: six failures all go through');

claim($_, 'many-' . ++$seq) for (qw(local deny allow)) x 10;
for my $mode (qw(local deny allow)) {
    my $n = lines_since($ng{$mode}, $mark{$mode}, $down_re);
    ok($n >= 1 && $n <= 2, "$mode node: the outage is logged once per worker, not per request ($n lines)");
    like($ng{$mode}->log_since($mark{$mode}), qr/unavailable \(.+\), store_down $mode/, "$mode node: the line names the mode");
}

# --- Redis back ------------------------------------------------------------------------

$redis->restart;
ok(redis_used_again('local', 8), 'after a restart the local node uses Redis again by itself');
for my $mode (qw(local deny allow)) {
    ok(wait_until(sub { lines_since($ng{$mode}, $mark{$mode}, $up_re) >= lines_since($ng{$mode}, $mark{$mode}, $down_re) },
            timeout => 8),
        "$mode node: every worker that lost Redis logs that it is available again");
}
@st = map { claim('deny', 'back-' . ++$seq, '/ok')->{status} } 1 .. 10;
is_deeply(\@st, [(200) x 10], 'store_down deny: guarded requests pass again once Redis is back');

# --- Redis hanging ------------------------------------------------------------------------

%mark = map { $_ => $ng{$_}->log_mark } keys %ng;
$redis->sigstop;

my @times;
@st = ();
for (1 .. 8) {
    my $r = claim('local', 'hang-1');
    push @st, $r->{status};
    push @times, $r->{elapsed};
}
my $slowest = (sort { $b <=> $a } @times)[0];
cmp_ok($slowest, '<', 0.5, sprintf('Redis hanging: every guarded request answers within 0.5 s (slowest %.3f s)', $slowest));
is_deeply(\@st, [404, 404, 404, (429) x 5], 'Redis hanging: store_down local still locks after three failures');

my $t0 = time;
my @burst = http_burst_responses($ng{local}->port, 20,
    sub ($i) { { method => 'GET', path => '/ok', headers => { 'X-Device' => "hang-b$i" } } });
my $took = time - $t0;
is(scalar(grep { $_->{status} == 200 } @burst), 20, 'Redis hanging: twenty simultaneous guarded requests are all answered');
cmp_ok($took, '<', 1, sprintf('Redis hanging: within a second (%.3f s), no worker is blocked', $took));

$r = http_get($ng{local}->port, '/free');
is($r->{status}, 200, 'Redis hanging: an unguarded location answers normally');
cmp_ok($r->{elapsed}, '<', 0.3, 'Redis hanging: and fast');

$r = claim('deny', 'hang-2');
is($r->{status}, 503, 'Redis hanging: store_down deny answers 503');
cmp_ok($r->{elapsed}, '<', 0.5, 'Redis hanging: within 0.5 s');

claim($_, 'many-' . ++$seq) for (qw(local deny)) x 10;
for my $mode (qw(local deny)) {
    my $n = lines_since($ng{$mode}, $mark{$mode}, $down_re);
    ok($n >= 1 && $n <= 2, "$mode node: the hang is logged once per worker, not per request ($n lines)");
}

$redis->sigcont;
sleep 0.5;            # let Redis run what the dropped connections had queued
$redis->flushall;
ok(redis_used_again('local', 8), 'after SIGCONT the local node uses Redis again by itself');
ok(wait_until(sub { lines_since($ng{local}, $mark{local}, $up_re) >= 1 }, timeout => 5),
    'and logs that Redis is available');
ok(wait_until(sub { claim('deny', 'cont-' . ++$seq, '/ok')->{status} == 200 }, timeout => 8, interval => 0.2),
    'store_down deny: guarded requests pass again after SIGCONT');

done();
