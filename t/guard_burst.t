# Burst safety across workers and nodes: two nginx instances (two workers
# each) share one Redis; 200 simultaneous wrong guesses for one key against a
# slow upstream let at most max_failures through. A lock made on one node
# refuses on the other.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use Time::HiRes ();
use PgTest;

my $redis = start_redis();
my $up    = start_upstream(delay_ms => 200);
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=100ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy device key=$http_x_device max_failures=5 window=30s lockout=30s;
    pairguard_policy tail key=$http_x_tail max_failures=1 window=30s lockout=30s;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /claim {
            pairguard device;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/404;
        }

        # nginx runs post_action after a client's hang-up too: the guard
        # must not reserve (and then count) the policies it finds there
        location = /claim-pa {
            pairguard device;
            pairguard_failure_status 404;
            post_action /after;
            proxy_pass http://backend/status/404;
        }
        location = /after {
            pairguard tail;
            proxy_pass http://backend/status/200;
        }

        location = /claim-ok {
            pairguard device;
            pairguard_failure_status 404;
            proxy_pass http://backend/status/200;
        }
    }
}
CONF
my $a = start_nginx($conf, redis => $redis, upstream => $up, workers => 2);
my $b = start_nginx($conf, redis => $redis, upstream => $up, workers => 2);
my @nodes = ($a->port, $b->port);

# warm up every worker's Redis connection, on a key of its own
http_burst(\@nodes, 16, sub ($i) { { method => 'GET', path => '/claim-ok', headers => { 'X-Device' => "warm-$i" } } });
$up->reset;

my @r = http_burst_responses(\@nodes, 200,
    sub ($i) { { method => 'POST', path => '/claim', headers => { 'X-Device' => 'lobby-1' }, body => '{}' } });
my %by;
$by{ $_->{status} }++ for @r;
my $through = $by{404} // 0;
my $refused = $by{429} // 0;
note explain \%by;

ok($through >= 1, "some guesses reached the upstream ($through)");
cmp_ok($through, '<=', 5, 'no more than max_failures (5) of 200 simultaneous guesses reached the upstream');
is($through + $refused, 200, 'every other guess was refused with 429 (no errors, no timeouts)');
is($up->count('/status/404'), $through, 'the upstream saw exactly the guesses answered 404');
my @ra = grep { defined } map { $_->{headers}{'retry-after'} } grep { $_->{status} == 429 } @r;
is(scalar @ra, $refused, 'every refusal has a Retry-After');
ok((grep { $_ eq '1' } @ra), 'refusals while attempts are in flight carry a short Retry-After (1)');

my $per_node = sub ($node) { scalar grep { $r[$_]{status} == 429 } grep { $_ % 2 == $node } 0 .. $#r };
ok($per_node->(0) > 0 && $per_node->(1) > 0, 'both nodes refused part of the burst');

# once the five failures are settled, the key is locked everywhere
if ($through == 5) {
    my @after = map { http_get($_, '/claim', headers => { 'X-Device' => 'lobby-1' })->{status} } @nodes;
    is_deeply(\@after, [429, 429], 'after five failures the key is locked on both nodes');
}
else {
    pass("the burst let $through through, the lock check is not applicable");
}

# --- a lock made on node A refuses on node B --------------------------------

my @st = map { http_get($a->port, '/claim', headers => { 'X-Device' => 'lobby-2' })->{status} } 1 .. 5;
is_deeply(\@st, [(404) x 5], 'five wrong guesses through node A are answered by the upstream');
my $seen = $up->count('/status/404');
my $rb = http_get($b->port, '/claim', headers => { 'X-Device' => 'lobby-2' });
is($rb->{status}, 429, 'node B refuses the key that node A locked');
cmp_ok($rb->{headers}{'retry-after'} // 0, '>', 20, 'with the rest of the 30 s lockout as Retry-After');
is(http_get($b->port, '/claim', headers => { 'X-Device' => 'lobby-3' })->{status}, 404, 'node B still serves other keys');
is($up->count('/status/404'), $seen + 1, 'the refused guess never reached the upstream');

# --- a locked key costs no Redis traffic --------------------------------------

my $before = $redis->cmd('INFO', 'commandstats');
my ($calls0) = $before =~ /cmdstat_evalsha:calls=(\d+)/;
my @again = http_burst(\@nodes, 40, sub ($i) { { method => 'GET', path => '/claim', headers => { 'X-Device' => 'lobby-2' } } });
is_deeply(\@again, [(429) x 40], 'forty more guesses for the locked key are all refused');
my ($calls1) = $redis->cmd('INFO', 'commandstats') =~ /cmdstat_evalsha:calls=(\d+)/;
cmp_ok(($calls1 // 0) - ($calls0 // 0), '<=', 4, 'answered from local memory: at most one Redis call per worker');

# --- aborted attempts are no way to guess faster ------------------------------

# five guesses whose clients go away before the slow upstream answers
my $locks = sub { my $n = 0; $n += () = $_->error_log =~ /pairguard: lockout start, policy "device"/g for $a, $b; $n };
my $locks0 = $locks->();
my @gone;
for my $i (1 .. 5) {
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $nodes[$i % 2], Proto => 'tcp')
        or die "connect: $!";
    print $sock "GET /claim HTTP/1.1\r\nHost: localhost\r\nX-Device: lobby-4\r\nConnection: close\r\n\r\n";
    push @gone, $sock;
}
Time::HiRes::sleep(0.05);
close $_ for @gone;
Time::HiRes::sleep(0.4);
my $sixth = http_get($a->port, '/claim', headers => { 'X-Device' => 'lobby-4' });
is($sixth->{status}, 429, 'five guesses whose clients hung up still use up the budget: the sixth is refused');
# and they count as failures: unanswered, they would only hold the budget
# until their reservations expire, and hanging up on every guess would guess
# without ever locking
ok(wait_until(sub { $locks->() == $locks0 + 1 }, timeout => 3),
    'the five unanswered guesses count as failures: the key locks');

# a hung-up guess on a location with post_action: its own attempt counts
# (above), the post_action location's policy is not reserved for it
my $tails = sub { my $n = 0; $n += () = $_->error_log =~ /policy "tail"/g for $a, $b; $n };
my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $a->port, Proto => 'tcp') or die "connect: $!";
print $sock "GET /claim-pa HTTP/1.1\r\nHost: localhost\r\nX-Device: pa-1\r\nX-Tail: t-1\r\nConnection: close\r\n\r\n";
Time::HiRes::sleep(0.05);
close $sock;
ok(wait_until(sub { $up->count('/status/200') >= 1 }, timeout => 3), 'nginx ran the post_action after the hang-up');
Time::HiRes::sleep(0.3);
is($tails->(), 0, '  and the guard reserved nothing there: no failure counted on its policy (max_failures=1)');

# --- a reload keeps what was learnt ---------------------------------------------

$a->reload;
is(http_get($a->port, '/claim', headers => { 'X-Device' => 'lobby-2' })->{status}, 429,
    'after a reload node A still refuses the locked key');
is(http_get($a->port, '/claim-ok', headers => { 'X-Device' => 'lobby-5' })->{status}, 200,
    'and serves other keys');

done();
