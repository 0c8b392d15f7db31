# The module on Redis Cluster (SPEC sections 1 and 6): three nginx nodes
# (two workers each) share one six-node cluster (three masters, three
# replicas). 300 concurrent wrong guesses for one key let at most
# max_failures through; so do 300 for a pair of stacked policies whose keys
# live in different slots (decided slot by slot, a refusal releases the other
# slot's reservation). A slot migrating (ASK), moved (MOVED) and resharded
# under traffic, a CLUSTER FAILOVER and a killed master: the locks made before
# are enforced after, the module finds the new masters by itself, and the
# only answers meanwhile are the upstream's, 429 or store_down's 503.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);
use PgTest;
use PgRedis;

plan skip_all => 'redis-cli or openssl missing' unless have_redis_cli();

my $c  = cluster();
my $up = start_upstream();
my $conf = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis %%WORDS%% timeout=300ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_store_down deny;
    pairguard_policy device key=$http_x_device max_failures=5 window=300s lockout=300s;
    pairguard_policy account key=$http_x_account max_failures=7 window=300s lockout=300s;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /claim {
            pairguard device;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/404;
        }
        location = /pair {
            pairguard device;
            pairguard account;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/404;
        }
        location = /ok {
            pairguard device;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/200;
        }
    }
}
CONF
my @ng = map { start_nginx($conf, upstream => $up, workers => 2, vars => { WORDS => $c->cluster_words }) } 1 .. 3;
my @ports = map { $_->port } @ng;
sub claim ($dev, $node = 0) { http_get($ports[$node], '/claim', headers => { 'X-Device' => $dev }, timeout => 5)->{status} }

# every pairguard key of the cluster, and the master holding it
sub all_keys () {
    my %k;
    for my $m ($c->masters) {
        $k{$_} = $m for @{ $c->cmd_at($m, 'KEYS', 'pairguard:*') };
    }
    return \%k;
}
sub new_keys ($before) { my $now = all_keys(); return grep { !exists $before->{$_} && !/\{events\}/ } keys %$now }

ok(wait_until(sub { !grep { claim("probe-$_", $_) != 404 } 0 .. 2 }, timeout => 20), 'the three nodes reach the cluster');
claim("spread-$_", $_ % 3) for 1 .. 30;
my %masters_used = map { $_ => 1 } values %{ all_keys() };
cmp_ok(scalar(keys %masters_used), '>=', 2, 'keys are spread over the masters (' . scalar(keys %masters_used) . ' of 3)');

# ---- 300 concurrent wrong guesses for one key ----
$up->reset;
my @r = http_burst_responses(\@ports, 300, sub ($i) { { method => 'GET', path => '/claim', headers => { 'X-Device' => 'burst-1' } } });
my %by;
$by{ $_->{status} }++ for @r;
note explain \%by;
cmp_ok($by{404} // 0, '<=', 5, 'at most max_failures (5) of 300 simultaneous guesses reached the upstream (' . ($by{404} // 0) . ')');
is(($by{404} // 0) + ($by{429} // 0), 300, '  the rest refused with 429');
is($up->count('/status/404'), $by{404} // 0, '  the upstream saw exactly those');

# ---- the same for two stacked policies in different slots ----
sleep 0.5;   # the settles of the requests above are written
my $before = all_keys();
$up->reset;
@r = http_burst_responses(\@ports, 300,
    sub ($i) { { method => 'GET', path => '/pair', headers => { 'X-Device' => 'pair-dev', 'X-Account' => 'pair-acct' } } });
%by = ();
$by{ $_->{status} }++ for @r;
note explain \%by;
my @pk = new_keys($before);
my %slots = map { $c->slot_of($_) => 1 } @pk;
is(scalar(keys %slots), 2, 'the two policies\' keys live in two slots (' . join(',', sort keys %slots) . ')');
cmp_ok($by{404} // 0, '<=', 5, 'at most the smaller budget (5) of 300 guesses reached the upstream (' . ($by{404} // 0) . ')');
is(($by{404} // 0) + ($by{429} // 0), 300, '  the rest refused with 429');
sleep 0.3;
is(http_get($ports[1], '/pair', headers => { 'X-Device' => 'other-dev', 'X-Account' => 'pair-acct' })->{status}, 404,
    'the account key is not locked by the device\'s refusals: the reservations refused elsewhere were released');

# ---- locks made now must survive everything below ----
my @locked = map { "locked-$_" } 1 .. 6;
for my $d (@locked) { claim($d, 0) for 1 .. 5 }
is(claim($_, 1), 429, "$_ is locked (seen from another node)") for @locked;
sleep 1;

# allowed requests (fresh keys, 200) over the three nodes while this process acts
sub traffic ($what, $action) {
    my ($st, $first_bad, $last_bad, $secs) = traffic_during($what,
        sub ($n) { http_get($ports[$n % 3], '/ok', headers => { 'X-Device' => "steady-$what-$n" }, timeout => 5)->{status} },
        $action);
    my %st = %$st;
    my $summary = join ' ', map { "$_ x$st{$_}" } sort keys %st;
    diag(sprintf("%s under traffic: %s over %.1f s%s", $what, $summary, $secs,
        defined $first_bad ? sprintf(', non-200 answers from %.2f s to %.2f s', $first_bad, $last_bad) : ', none lost'));
    ok(!grep({ $_ != 200 && $_ != 503 } keys %st), "$what: every answer meanwhile is the upstream's or store_down's 503");
    ok(($st{200} // 0) > 0, "$what: requests were served meanwhile");
    return \%st;
}
sub still_locked ($what) {
    ok(wait_until(sub { claim("probe-$what", 2) == 404 }, timeout => 20), "$what: the module finds its masters by itself");
    is(join(' ', map { claim($_, $_ =~ /(\d+)$/ ? $1 % 3 : 0) } @locked), join(' ', (429) x @locked),
        "$what: every lock made before is still enforced");
}

# ---- a slot migrating (ASK), then moved (MOVED) ----
sleep 0.5;
$before = all_keys();
claim('migrating-1', 0) for 1 .. 5;
sleep 0.3;
my ($mk) = new_keys($before);
my $slot = $c->slot_of($mk);
my $from = $c->node_for_slot($slot);
my ($to) = grep { $_ != $from } $c->masters;
$c->begin_migration($slot, $to);
is(claim('migrating-1', 1), 429, "slot $slot MIGRATING: the key still on the source is answered there (locked)");
$c->migrate_keys($slot, $mk);
is(claim('migrating-1', 2), 429, '  the key moved to the target: ASK followed (locked)');
$c->finish_migration($slot);
is(claim('migrating-1', 0), 429, '  the slot moved: MOVED followed (locked)');
is(claim('migrating-1', 1), 429, '  from every node');

traffic('reshard', sub { $c->reshard(($c->masters)[0], ($c->masters)[1], 500) });
still_locked('reshard');

traffic('CLUSTER FAILOVER', sub { $c->failover_replica(($c->masters)[0]) });
still_locked('CLUSTER FAILOVER');

traffic('killed master', sub { $c->kill_master(($c->masters)[1]) });
still_locked('killed master');

# events: published from every master (PUBLISH reaches the whole cluster),
# a failing history write (the stream's slot is elsewhere) never fails a script
my $logs = join '', map { $_->error_log } @ng;
# (CLUSTERDOWN while the killed master was not yet replaced is Redis' answer)
my @failed = grep { /script guard_batch failed/ && !/CLUSTERDOWN/ } split /\n/, $logs;
is(scalar(@failed), 0, 'no guard script failed on the cluster (but for CLUSTERDOWN during the failover)')
    or diag join "\n", @failed;
my $stream = eval { $c->cmd_at($c->node_for_key('pairguard:{events}-stream'), 'XRANGE', 'pairguard:{events}-stream', '-', '+') } // [];
my @stream = @$stream;
note('events kept in the stream on the cluster: ' . scalar(@stream));
done();
