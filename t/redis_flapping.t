# A Redis that completes the handshake and then fails every command (here a
# replica, which answers the guard's script READONLY; in life a managed
# Redis' name still pointing at the old primary after a failover, or a round
# trip longer than the command timeout) is one outage: the worker's
# reconnections back off (50 ms doubling to 2 s) instead of starting again
# from the shortest wait after every handshake, and the outage is logged
# once, not as "unavailable" / "available" pairs per reconnection. Once the
# server takes writes (REPLICAOF NO ONE) and stays up, the worker is back
# and says so once.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgTest;

# one server and its replica (PG_REDIS_MODE=cluster does not apply: a
# cluster node takes no REPLICAOF)
delete $ENV{PG_REDIS_MODE};
my $master  = start_redis();
my $replica = start_redis();
$replica->cmd('REPLICAOF', '127.0.0.1', $master->port);
ok(wait_until(sub { $replica->cmd('INFO', 'replication') =~ /master_link_status:up/ }, timeout => 10),
   'the replica is in sync');
my $up = start_upstream();
my $ng = start_nginx(<<'CONF', redis => $replica, upstream => $up, workers => 1);
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=100ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_store_down local;
    pairguard_policy device key=$http_x_device max_failures=3 window=30s lockout=30s;
    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /claim { pairguard device; pairguard_failure_status 404; proxy_pass http://backend/status/404; }
        location = /pairguard/status { pairguard_status; }
    }
}
CONF

sub connections () { ($replica->cmd('INFO', 'stats') =~ /total_connections_received:(\d+)/)[0] }
my $available = qr/pairguard: redis \S+ available/;
sub store_up () {
    my $b = http_get($ng->port, '/pairguard/status?format=prometheus')->{body} // '';
    return $b =~ /^pairguard_store_up (\S+)$/m ? $1 : 'none';
}

my $mark = $ng->log_mark;
my $c0 = connections();
my ($t0, $n, @up) = (time, 0);
while (time - $t0 < 3) {
    http_get($ng->port, '/claim', headers => { 'X-Device' => 'd' . $n++ }, timeout => 5);
    push @up, store_up();
    sleep 0.01;
}
my $made = connections() - $c0;
my $log = $ng->log_since($mark);
my $down = () = $log =~ /unavailable/g;
my $back = () = $log =~ /$available/g;
note "$n requests, $made connections in 3 s";
cmp_ok($n, '>', 50, 'requests kept coming (answered under store_down local)');
cmp_ok($made, '<=', 9, "3 s of a server that fails every command: the reconnections back off ($made, not one per request)");
like($log, qr/unavailable \(READONLY/, 'the outage is logged with its cause');
cmp_ok($down, '<=', 1, "  once ($down lines)");
is($back, 0, '  and never as back while it is not');
my $ups = grep { $_ eq '1' } @up;
cmp_ok($ups, '<=', @up / 5, "  pairguard_store_up reads 0 while it fails (1 in $ups of " . @up . ' samples)');

# the server takes writes now: back within the longest wait, logged once
$replica->cmd('REPLICAOF', 'NO', 'ONE');
$mark = $ng->log_mark;
ok(wait_until(sub {
    http_get($ng->port, '/claim', headers => { 'X-Device' => 'back' . $n++ });
    scalar(my @k = $replica->guard_keys) > 0;
}, timeout => 8), 'once it takes writes the worker uses it again');
ok(wait_until(sub { $ng->log_since($mark) =~ $available }, timeout => 5), '  and logs it back');
my $backs = () = $ng->log_since($mark) =~ /$available/g;
is($backs, 1, '  once');
is(store_up(), 1, '  pairguard_store_up reads 1');
done();
