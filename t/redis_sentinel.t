# The module finds its Redis through Sentinel (SPEC section 1): the master is
# asked from the sentinels in turn (with the sentinels' own ACL user),
# confirmed with ROLE, and followed on +switch-master: a SENTINEL FAILOVER
# and then a killed master, each while requests keep coming, cost only the
# requests in flight during the switch (answered per store_down), and every
# lock that existed before the failover is still enforced after it. Real
# redis-server + three redis-sentinel (t/lib/PgRedis.pm).
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);
use PgTest;
use PgRedis;

plan skip_all => 'redis-cli or openssl missing' unless have_redis_cli();

my $s = sentinel_set(master_name => 'pg', password => 'datapw', sentinel_user => 'sen', sentinel_password => 'senpw');
my $up = start_upstream();
my $conf = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis %%WORDS%% password=datapw sentinel_user=sen sentinel_password=senpw timeout=200ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_store_down %%MODE%%;
    pairguard_policy device key=$http_x_device max_failures=3 window=120s lockout=120s;

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
    }
}
CONF
my $ng = start_nginx($conf, upstream => $up, workers => 2, vars => { WORDS => $s->sentinel_words, MODE => 'deny' });
sub claim ($dev) { http_get($ng->port, '/claim', headers => { 'X-Device' => $dev }, timeout => 5)->{status} }
sub keys_on ($port) { my $r = $s->cmd_at($port, 'KEYS', 'pairguard:*'); scalar @$r }

ok(wait_until(sub { claim('probe-0') == 404 }, timeout => 15), 'the master is found through the sentinels (ACL user) and used');
my @locked = map { "locked-$_" } 1 .. 5;
for my $dev (@locked) {
    claim($dev) for 1 .. 3;
}
is(claim($_), 429, "$_ is locked") for @locked;
my $m1 = $s->master_port;
ok(keys_on($m1) >= 5, 'the locks are on the master');

# ---- SENTINEL FAILOVER while requests come ----
# a child sends a steady stream of allowed requests (fresh keys, answered
# 200 by the upstream) while this process runs the failover
sub steady ($n) { http_get($ng->port, '/ok', headers => { 'X-Device' => "steady-$n" }, timeout => 5)->{status} }

my $t_switch = time;
my ($st, $fb, $lb, $dur) = traffic_during('failover', \&steady, sub { $s->failover });
my $m2 = $s->master_port;
isnt($m2, $m1, "SENTINEL FAILOVER: 127.0.0.1:$m1 -> 127.0.0.1:$m2");
my $summary = join ' ', map { "$_ x$st->{$_}" } sort keys %$st;
diag("sentinel failover under traffic: $summary over ${\ sprintf('%.1f', $dur)} s"
     . (defined $fb ? sprintf(', non-200 answers from %.2f s to %.2f s', $fb, $lb) : ', no request lost'));
ok(!grep({ $_ != 200 && $_ != 503 } keys %$st), 'every answer during the switch is the upstream\'s or store_down deny\'s 503');
ok(($st->{200} // 0) > 0, '  and requests were served meanwhile');
ok(wait_until(sub { claim('probe-1') == 404 }, timeout => 15), 'the module follows the new master by itself');
like($ng->error_log, qr/sentinel reports \+switch-master pg /, 'the +switch-master message is heard');
is(claim($_), 429, "$_ is still locked after the failover") for @locked;
claim('after-1') for 1 .. 3;
is(claim('after-1'), 429, 'a new key locks after the failover');
ok(scalar(grep { 1 } @{ $s->cmd_at($m2, 'KEYS', 'pairguard:*') }) >= 6, 'and its lock is on the new master');

# ---- the master killed: the sentinels promote the replica ----
my %before = map { $_ => 1 } @locked, 'after-1';
($st, $fb, $lb, $dur) = traffic_during('kill', sub ($n) { steady("k$n") }, sub { $s->kill_master });
my $m3 = $s->master_port;
isnt($m3, $m2, "master 127.0.0.1:$m2 killed; sentinels promote 127.0.0.1:$m3");
$summary = join ' ', map { "$_ x$st->{$_}" } sort keys %$st;
diag("killed master under traffic: $summary over ${\ sprintf('%.1f', $dur)} s"
     . (defined $fb ? sprintf(', non-200 answers from %.2f s to %.2f s', $fb, $lb) : ''));
ok(!grep({ $_ != 200 && $_ != 503 } keys %$st), 'every answer meanwhile is the upstream\'s or a 503 (store_down deny)');
ok(wait_until(sub { claim('probe-2') == 404 }, timeout => 20), 'the module finds the promoted replica by itself');
is(claim($_), 429, "$_ is still locked after the master died") for sort keys %before;

# ---- an unknown master name: no sentinel knows it ----
my $bad = start_nginx($conf, upstream => $up, workers => 1,
    vars => { WORDS => $s->sentinel_words =~ s/master=pg/master=nope/r, MODE => 'deny' });
ok(wait_until(sub { $bad->error_log =~ /no sentinel knows the master/ }, timeout => 10), 'an unknown master name: the store is down, and says why');
is(http_get($bad->port, '/claim', headers => { 'X-Device' => 'x' })->{status}, 503, '  answered per store_down');
unlike($ng->error_log . $bad->error_log, qr/datapw|senpw/, 'no password in the error logs');
done();
