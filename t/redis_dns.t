# A Redis named by a host name is looked up with nginx's resolver at start
# and again at every reconnection (SPEC section 1): when the name moves to
# another address (a managed Redis failing over), the workers follow it
# without a reload. A tiny DNS server in this file answers the name with the
# address written in a file; two redis-servers listen on 127.0.0.1 and
# 127.0.0.2, same port. Without a resolver, a name that does not resolve
# fails nginx -t.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use IO::Socket::INET;
use POSIX ();
use Time::HiRes qw(time sleep);
use PgTest;

my $answer_file = testdir() . '/dns-answer';
write_file($answer_file, "127.0.0.1\n");
my $dns_port = free_port();
my $queries_file = testdir() . '/dns-queries';

# ---- a DNS server answering every A query with the file's address (TTL 1) ----
my $dns_sock = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $dns_port, Proto => 'udp')
    or die "dns socket: $!";
my $dns_pid = fork() // die "fork: $!";
if ($dns_pid == 0) {
    while (1) {
        my $q;
        my $peer = $dns_sock->recv($q, 512) // next;
        next if length($q) < 17;
        my ($id, $flags, $qd) = unpack('n n n', $q);
        # the question: labels up to the zero byte, then type and class
        my $i = 12;
        my @labels;
        while ($i < length($q)) {
            my $l = ord(substr($q, $i, 1));
            last if $l == 0;
            push @labels, substr($q, $i + 1, $l);
            $i += $l + 1;
        }
        my $qend = $i + 5;
        my ($qtype) = unpack('n', substr($q, $i + 1, 2));
        my $question = substr($q, 12, $qend - 12);
        my $name = lc join '.', @labels;
        open(my $lf, '>>', $queries_file); print $lf "$name $qtype\n"; close $lf;
        my $ip = PgTest::read_file($answer_file) =~ s/\s+//gr;
        my ($an, $rcode) = (0, 3);   # NXDOMAIN unless ours
        my $answer = '';
        if ($name eq 'redis.pg.test') {
            $rcode = 0;
            if ($qtype == 1) {
                $an = 1;
                $answer = pack('n n n N n', 0xc00c, 1, 1, 1, 4) . pack('C4', split /\./, $ip);
            }
        }
        my $resp = pack('n n n n n n', $id, 0x8180 | $rcode, 1, $an, 0, 0) . $question . $answer;
        $dns_sock->send($resp, 0, $peer);
    }
    POSIX::_exit(0);
}
END { if ($dns_pid) { local $?; kill "KILL", $dns_pid; waitpid($dns_pid, 0) } }

my $rport = free_port();
my $ra = start_redis(port => $rport);                   # 127.0.0.1
my $rb = start_redis(port => $rport, bind => '127.0.0.2');
my $up = start_upstream();

my $conf = <<'CONF';
http {
    %%HTTP_COMMON%%
    resolver 127.0.0.1:%%DNS_PORT%% ipv6=off valid=1s;
    resolver_timeout 2s;
    pairguard_redis redis.pg.test:%%RPORT%% timeout=200ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_store_down deny;
    pairguard_policy device key=$http_x_device max_failures=3 window=60s lockout=60s;

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
my $ng = start_nginx($conf, upstream => $up, workers => 2, vars => { DNS_PORT => $dns_port, RPORT => $rport });
sub claim ($dev) { http_get($ng->port, '/claim', headers => { 'X-Device' => $dev }, timeout => 5)->{status} }

ok(wait_until(sub { claim('probe-a') == 404 }, timeout => 10), 'the name resolves through nginx\'s resolver: the guard reaches Redis');
like(read_file($queries_file), qr/^redis\.pg\.test 1$/m, 'the DNS server was asked for redis.pg.test (A)');
is(claim('dev-1'), 404, 'failure reaches the upstream') for 1 .. 3;
is(claim('dev-1'), 429, 'the key locks');
ok(scalar(my @ka = $ra->scan_keys("pairguard:*")) >= 1, 'the lock is in the Redis at 127.0.0.1');
is(scalar(my @kb = $rb->scan_keys("pairguard:*")), 0, 'the Redis at 127.0.0.2 holds nothing yet');

# ---- the name moves; the old server goes away ----
write_file($answer_file, "127.0.0.2\n");
sleep 1.2;   # the resolver's answer (valid=1s) is stale now
$ra->stop;
ok(wait_until(sub { claim('probe-b') == 404 }, timeout => 15), 'after the old address dies the workers reconnect to the new one (no reload)');
is(claim('dev-2'), 404, 'a new failure reaches the upstream') for 1 .. 3;
is(claim('dev-2'), 429, 'and locks, now in the new Redis');
ok(scalar(my @kb2 = $rb->scan_keys("pairguard:*")) >= 1, 'the Redis at 127.0.0.2 holds the new lock');
# (logged once the new connection has stayed up a second)
ok(wait_until(sub { $ng->error_log =~ /pairguard: redis redis\.pg\.test:\d+ available/ }, timeout => 5),
   'the store is logged available again');

# ---- without a resolver a name that does not resolve fails nginx -t ----
my $nores = $conf =~ s/resolver .*;\n//gr =~ s/redis\.pg\.test/no-such-host.pg.invalid/r;
my ($rc, $out) = nginx_t($nores, upstream => $up, vars => { DNS_PORT => $dns_port, RPORT => $rport });
isnt($rc, 0, 'without a resolver, an unknown name fails nginx -t');
like($out, qr/host not found in "no-such-host\.pg\.invalid:\d+" \(and no "resolver" in the http block\)/, '  saying so');
done();
