# A Redis failover seen by an attacker (SPEC sections 1, 2 and 6): two nginx
# nodes (two workers each) with pairguard_store_down local on a Sentinel set,
# guessing one key on both nodes all through a killed master. A key locked
# before the failover never reaches the upstream, during the switch (the
# nodes' verdict caches and local counters hold it) or after; a key being
# guessed through the switch gets at most its Redis budget plus one local
# budget per node (the documented price of store_down local), and is locked
# again in Redis after.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use Time::HiRes qw(time sleep);
use PgTest;
use PgRedis;

plan skip_all => 'redis-cli or openssl missing' unless have_redis_cli();

my $s  = sentinel_set(master_name => 'pg');
my $up = start_upstream();
my $conf = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis %%WORDS%% timeout=100ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_store_down local;
    pairguard_policy device key=$http_x_device max_failures=5 window=300s lockout=300s;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /claim {
            pairguard device;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/404;
        }
    }
}
CONF
my @ng = map { start_nginx($conf, upstream => $up, workers => 2, vars => { WORDS => $s->sentinel_words }) } 1 .. 2;
my @ports = map { $_->port } @ng;
sub claim ($dev, $node) { http_get($ports[$node], '/claim', headers => { 'X-Device' => $dev }, timeout => 5)->{status} }

ok(wait_until(sub { claim('probe', 0) == 404 && claim('probe', 1) == 404 }, timeout => 15), 'both nodes reach the master');
claim('locked-before', $_ % 2) for 1 .. 5;
is(claim('locked-before', 0), 429, 'a key is locked before the failover');
is(claim('locked-before', 1), 429, '  on both nodes');
sleep 1;   # replicated, and older than one second

$up->reset;
my $out = testdir() . '/attack';
my $stop = "$out.stop";
my $parent = $$;
my $child = fork() // die;
if ($child == 0) {
    open(my $fh, '>', $out) or POSIX::_exit(1);
    $fh->autoflush(1);
    my $n = 0;
    # never outliving the test (it would hold prove's pipe)
    sleep 0.005 until -e "$out.go" || getppid() != $parent;
    until (-e $stop || getppid() != $parent) {
        my $node = $n++ % 2;
        printf $fh "guess %s\n", claim('guessed-through', $node);
        printf $fh "locked %s\n", claim('locked-before', $node);
        sleep 0.01;
    }
    POSIX::_exit(0);
}
sleep 0.3;
my $t0 = time;
write_file("$out.go", '');   # the guessing starts as the master dies
$s->kill_master;
my $switch = time - $t0;
ok(wait_until(sub { claim('probe-after', 0) == 404 && claim('probe-after', 1) == 404 }, timeout => 20),
    'both nodes find the promoted master');
sleep 1;
write_file($stop, '');
waitpid($child, 0);

my (%guess, %locked);
for (split /\n/, read_file($out)) {
    my ($what, $code) = split ' ';
    ($what eq 'guess' ? \%guess : \%locked)->{$code}++;
}
my $through = $up->count('/status/404') - 2;   # the two probes after the switch
diag(sprintf('killed master (switch %.1f s): guesses %s; locked key %s; guesses that reached the upstream: %d',
    $switch, join(' ', map { "$_ x$guess{$_}" } sort keys %guess), join(' ', map { "$_ x$locked{$_}" } sort keys %locked), $through));
is(join(' ', sort keys %locked), '429', 'the key locked before the failover was refused all through it (never reached the upstream)');
cmp_ok($through, '<=', 5 + 2 * 5, 'the key guessed through the switch got at most its Redis budget plus one local budget per node (15)');
ok(!grep({ $_ != 404 && $_ != 429 } keys %guess), 'every guess was answered by the upstream or refused (429), none failed');
is(claim('guessed-through', 0), 429, 'after the failover the guessed key is locked');
is(claim('guessed-through', 1), 429, '  on both nodes');
is(claim('locked-before', 0) . ' ' . claim('locked-before', 1), '429 429', 'the key locked before is still locked in the new master');
done();
