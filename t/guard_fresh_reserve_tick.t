# The script-free reserve under timer_resolution. nginx's cached clock then
# moves only at each tick (2 s here): a worker that learns Redis' clock and
# makes a fresh key's SET within one tick extrapolates nothing, and the SET's
# reservation T would end before the script's (Redis' now when the SET ran
# + 60 s). The SET's answer is measured against the clock itself, not the
# cached one: it comes more than 500 ms after the SET was made (by the
# cached clock), so its reservation is released and the reserve goes to the
# script. Checked on what Redis ran (MONITOR): every SET whose T ends before
# the script's would is released.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(sleep time);
use PgTest;

if (($ENV{PG_REDIS_MODE} // '') eq 'cluster') {
    plan skip_all => 'a Redis Cluster never takes the script-free path (t/guard_fresh_reserve.t checks that)';
}

my $redis = start_redis();
my $up    = start_upstream();
my $ng    = start_nginx(<<'CONF', redis => $redis, upstream => $up, workers => 1, main => 'timer_resolution 2000ms;');
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%%;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy ip key=$remote_addr max_failures=3 window=60s lockout=60s;
    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /ok { pairguard ip; pairguard_failure_status 404; proxy_pass http://backend/status/200; }
        location = /msec { return 200 $msec; }
    }
}
CONF

# each client its own source address (the script-free path is only for a
# key pinned to the client's address)
my %addr;
sub get ($path, $client = 'x') {
    unless (exists $addr{$client}) {
        my $n = keys %addr;
        $addr{$client} = '127.0.20.' . (1 + $n);
    }
    my $from = $addr{$client};
    http_get($ng->port, $path, from => $from);
}
# Waits for the worker's cached clock to move: a tick just happened.
sub next_tick () {
    my $t0 = get('/msec')->{body};
    wait_until(sub { get('/msec')->{body} ne $t0 }, timeout => 5, interval => 0.01) or die "no tick\n";
}

my $m = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $redis->port, Proto => 'tcp') or die "connect: $!";
print $m "MONITOR\r\n";
my $ok = <$m>;
my @st;
for my $i (1 .. 3) {
    sleep 2.2;    # a tick later: the learned clock is stale, the next reserve is the script's
    next_tick();
    push @st, get('/ok', "learn$i")->{status};    # the script's: Redis' clock learned
    sleep 1.2;                                     # within the same tick
    push @st, get('/ok', "fresh$i")->{status};    # a fresh key, the clock "fresh"
}
is("@st", join(' ', ('200') x 6), 'every request allowed');
sleep 0.3;
my $mark = "pg-tick-$$";
$redis->cmd('ECHO', $mark);
my (@mon, %released);
{
    local $SIG{ALRM} = sub { die "MONITOR: no marker\n" };
    alarm 10;
    while (my $l = <$m>) {
        last if index($l, $mark) >= 0;
        $released{$1} = 1 while $l =~ /"n" "(\d{13})"/g;
        push @mon, $l;
    }
    alarm 0;
}
my (@seen, $early);
for my $l (@mon) {
    next unless $l =~ /^\+(\d+)\.(\d+) \[\d+ ([^\]]+)\] "SET" "[^"]*" "\|\|\|(\d{13})\|" "NX" "PX" "60000"/;
    next if $3 eq 'lua';
    my $diff = $4 - ($1 * 1000 + int($2 / 1000) + 60000);    # T - the script's reservation then
    push @seen, $released{$4} ? "${diff}(released)" : $diff;
    $early++ if $diff < 0 && !$released{$4};
}
note "T - (Redis now when the SET ran + 60000), ms: @seen";
# a loaded machine may let a tick pass before the fresh key's request (the
# clock is stale then, and its reserve the script's): one round is enough
cmp_ok(scalar @seen, '>=', 1, 'fresh keys\' reserves went as SETs (the clock looked fresh)');
is($early // 0, 0, 'no SET reservation ending before the script\'s would is kept') or diag "@seen";
ok(wait_until(sub { scalar(my @k = $redis->guard_keys) == 0 }, timeout => 3), 'every reservation settled or released')
    or diag explain [ map { [ $_, $redis->cmd('GET', $_) ] } $redis->guard_keys ];
done();
