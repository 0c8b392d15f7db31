# The module talks TLS to Redis on nginx's own connections (SPEC section 1):
# verified against tls_trusted_certificate, SNI and name check
# (tls_server_name), a client certificate when Redis asks for one, a wrong CA
# refused (the store is then down and answers follow store_down), tls_verify=off
# connects anyway, and a reconnection reuses the TLS session; on a Redis
# Cluster the same words hold for the masters found in CLUSTER SLOTS. Real
# redis-server with TLS (t/lib/PgRedis.pm makes a throwaway CA at test time).
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgTest;
use PgRedis;

plan skip_all => 'redis-cli or openssl missing' unless have_redis_cli();

# PG_REDIS_MODE=cluster (t/lib/PgTest.pm): every `pairguard_redis 127.0.0.1:P`
# is then `cluster=127.0.0.1:P`, and the TLS servers are one-node clusters
# holding every slot, as PgTest's plain ones are (the bus in TLS too: a node
# with `port 0` and a plain bus announces port 0 in CLUSTER SLOTS).
my $CLUSTER = ($ENV{PG_REDIS_MODE} // '') eq 'cluster';
sub tls_server (%o) {
    my $t = tls_redis(%o);
    return $t unless $CLUSTER;
    $t->stop_server;
    my $conf = $t->dir . '/redis.conf';
    open(my $fh, '>>', $conf) or die "$conf: $!";
    print $fh map { "$_\n" } 'cluster-enabled yes', 'cluster-config-file nodes.conf', 'cluster-port ' . free_port(),
        'tls-cluster yes';
    close $fh or die "$conf: $!";
    $t->_spawn('redis', ['redis-server', $conf], $t->dir . '/redis.log');    # stopped with $t
    wait_until(sub { (eval { $t->cli('PING') } // '') eq 'PONG' }, timeout => 10)
        or die 'TLS cluster node on port ' . $t->port . " does not answer PING\n";
    $t->cli('CLUSTER', 'ADDSLOTSRANGE', 0, 16383);
    wait_until(sub { $t->cli('CLUSTER', 'INFO') =~ /cluster_state:ok/ }, timeout => 10)
        or die 'TLS cluster node on port ' . $t->port . " not ok\n";
    return $t;
}
# how the store is named in the error log, and the words its reason starts with
my ($STORE, $NODE) = $CLUSTER ? ('cluster=127\.0\.0\.1:\d+', '127\.0\.0\.1:\d+: ') : ('127\.0\.0\.1:\d+', '');

my $tls = tls_server(client_certs => 'optional', password => 'tlspw');
my $up  = start_upstream();
my $conf = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%RPORT%% password=tlspw timeout=300ms tls %%TLS%%;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_store_down deny;
    pairguard_policy device key=$http_x_device max_failures=3 window=30s lockout=30s;

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

sub node (%tls) {
    my $words = join ' ', map { "$_=$tls{$_}" } sort keys %tls;
    return start_nginx($conf, upstream => $up, workers => 2, log_level => 'info',
        vars => { RPORT => $tls->port, TLS => $words });
}
sub claim ($ng, $dev) { http_get($ng->port, '/claim', headers => { 'X-Device' => $dev }, timeout => 5)->{status} }
sub dbsize () { $tls->cli('-a', 'tlspw', '--no-auth-warning', 'DBSIZE') }

# ---- verified against the test CA: the guard works through TLS ----
my $good = node(tls_trusted_certificate => $tls->ca);
ok(wait_until(sub { claim($good, 'probe') == 404 }, timeout => 10), 'with the right CA the guard reaches Redis (a failure is counted, not a 503)');
is(claim($good, 'dev-1'), 404, "failure 1 reaches the upstream") for 1 .. 3;
my $st = claim($good, 'dev-1');
is($st, 429, 'the fourth is refused: the lock is in Redis, over TLS');
ok(dbsize() >= 1, 'Redis holds the keys (DBSIZE ' . dbsize() . ')');
like($good->error_log, qr/\[info\].*pairguard: redis 127\.0\.0\.1:\d+ connected with TLS/, 'the TLS connection is logged at info');

# a reconnection resumes the TLS session (TLS 1.3 ticket kept from the last one)
my $mark = $good->log_mark;
$tls->cli('-a', 'tlspw', '--no-auth-warning', 'CLIENT', 'KILL', 'TYPE', 'normal');
ok(wait_until(sub { $good->log_since($mark) =~ /connected with TLS, session reused/ }, timeout => 10),
    'after Redis drops the connections, the workers reconnect resuming their TLS session');
ok(wait_until(sub { claim($good, 'dev-1') == 429 }, timeout => 5), 'and the lock is still enforced');

# ---- the wrong CA is refused ----
my $wrong = node(tls_trusted_certificate => $tls->wrong_ca);
ok(wait_until(sub { $wrong->error_log =~ /TLS certificate verify error/ }, timeout => 10), 'the wrong CA: certificate verify error logged');
like($wrong->error_log, qr/pairguard: redis $STORE tls unavailable \(${NODE}TLS certificate verify error: [^)]*\), store_down deny/,
    '  and the store is down');
is(claim($wrong, 'dev-2'), 503, '  answered per store_down deny');

# ---- tls_verify=off connects anyway ----
my $noverify = node(tls_trusted_certificate => $tls->wrong_ca, tls_verify => 'off');
ok(wait_until(sub { claim($noverify, 'dev-1') == 429 }, timeout => 10), 'tls_verify=off connects despite the wrong CA (the lock is seen)');

# ---- name check ----
my $badname = node(tls_trusted_certificate => $tls->ca, tls_server_name => 'redis.other.example');
ok(wait_until(sub { $badname->error_log =~ /TLS certificate does not match "redis\.other\.example"/ }, timeout => 10),
    'a server name the certificate does not carry is refused');
is(claim($badname, 'dev-3'), 503, '  answered per store_down deny');
my $goodname = node(tls_trusted_certificate => $tls->ca, tls_server_name => 'localhost');
ok(wait_until(sub { claim($goodname, 'dev-1') == 429 }, timeout => 10), 'tls_server_name=localhost (in the certificate) connects');

# ---- a client certificate when Redis requires one ----
my $strict = tls_server(client_certs => 'yes');
my $conf2 = $conf =~ s/password=tlspw //r;
my $nocert = start_nginx($conf2, upstream => $up, workers => 1, log_level => 'info',
    vars => { RPORT => $strict->port, TLS => 'tls_trusted_certificate=' . $strict->ca });
ok(wait_until(sub { $nocert->error_log =~ /pairguard: redis .* unavailable/ }, timeout => 10), 'Redis requiring a client certificate refuses none');
is(claim($nocert, 'dev-4'), 503, '  answered per store_down deny');
my $withcert = start_nginx($conf2, upstream => $up, workers => 1, log_level => 'info',
    vars => { RPORT => $strict->port,
              TLS => join(' ', 'tls_trusted_certificate=' . $strict->ca, 'tls_certificate=' . $strict->client_cert,
                          'tls_certificate_key=' . $strict->client_key) });
ok(wait_until(sub { claim($withcert, 'probe-5') == 404 }, timeout => 10), 'with tls_certificate and tls_certificate_key it connects');

# ---- configuration errors ----
for my $case ([ 'tls_verify=off', qr/"tls_\*" parameters need "tls"/ ],
              [ 'tls tls_certificate=/nonexistent.pem', qr/"tls_certificate" and "tls_certificate_key" go together/ ],
              [ 'tls tls_trusted_certificate=/nonexistent/ca.pem', qr/nonexistent\/ca\.pem/ ]) {
    my ($words, $re) = @$case;
    my $c = $conf =~ s/tls %%TLS%%/$words/r;
    my ($rc, $out) = nginx_t($c, upstream => $up, vars => { RPORT => $tls->port });
    isnt($rc, 0, "nginx -t refuses \"$words\"");
    like($out, $re, '  saying why');
}

unlike(join('', map { $_->error_log } $good, $wrong, $noverify, $badname, $goodname), qr/tlspw/, 'no password in any error log');

# ---- TLS to the sentinels and to the master they name ----
{
    my $s = sentinel_set(tls => 1, master_name => 'pg');
    my $sconf = $conf2 =~ s/127\.0\.0\.1:%%RPORT%%/%%WORDS%%/r;
    my $sn = start_nginx($sconf, upstream => $up, workers => 1, log_level => 'info',
        vars => { WORDS => $s->sentinel_words, TLS => 'tls_trusted_certificate=' . $s->certs->{ca} });
    ok(wait_until(sub { claim($sn, 'probe-s') == 404 }, timeout => 15), 'Sentinel over TLS: sentinels and master verified, the guard works');
    like($sn->error_log, qr/connected with TLS/, '  the master connection is TLS');
    my $wrongs = start_nginx($sconf, upstream => $up, workers => 1,
        vars => { WORDS => $s->sentinel_words, TLS => 'tls_trusted_certificate=' . $s->certs->{wrong_ca} });
    ok(wait_until(sub { $wrongs->error_log =~ /no sentinel knows the master/ }, timeout => 15),
        '  with the wrong CA no sentinel is trusted: the store is down');
    $s->stop;
}

# ---- TLS to every node of a Redis Cluster (client certificate too) ----
{
    my $c = cluster(tls => 1, client_certs => 'yes');
    my $cconf = $conf2 =~ s/127\.0\.0\.1:%%RPORT%%/%%WORDS%%/r;
    my $certs = $c->certs;
    my $cn = start_nginx($cconf, upstream => $up, workers => 1, log_level => 'info',
        vars => { WORDS => $c->cluster_words,
                  TLS => join(' ', "tls_trusted_certificate=$certs->{ca}", "tls_certificate=$certs->{client_cert}",
                              "tls_certificate_key=$certs->{client_key}") });
    ok(wait_until(sub { claim($cn, 'probe-c') == 404 }, timeout => 20), 'Cluster over TLS with a client certificate: the guard works');
    claim($cn, "tls-spread-$_") for 1 .. 20;
    my $conns = () = $cn->error_log =~ /connected with TLS/g;
    cmp_ok($conns, '>=', 3, "  one TLS connection per master ($conns)");

    # the TLS words hold for the masters found in CLUSTER SLOTS too, not
    # only for the seed: one seed, and a name to check / no check at all
    my $seed = 'cluster=127.0.0.1:' . ($c->masters)[0];
    my $cert = "tls_certificate=$certs->{client_cert} tls_certificate_key=$certs->{client_key}";
    for my $case (["tls_trusted_certificate=$certs->{ca} tls_server_name=localhost", 'tls_server_name=localhost'],
                  ["tls_trusted_certificate=$certs->{wrong_ca} tls_verify=off", 'tls_verify=off and the wrong CA']) {
        my ($words, $what) = @$case;
        my $one = start_nginx($cconf, upstream => $up, workers => 1, log_level => 'info',
            vars => { WORDS => $seed, TLS => "$words $cert" });
        my $n = 0;
        ok(wait_until(sub { claim($one, 'seed-' . ++$n) == 404 }, timeout => 20), "Cluster over TLS, one seed, $what: the guard works");
        claim($one, "seed-spread-$_") for 1 .. 20;
        my %nodes = map { $_ => 1 } $one->error_log =~ /redis (127\.0\.0\.1:\d+) connected with TLS/g;
        cmp_ok(scalar(keys %nodes), '>=', 3, "  every master reached over TLS (" . join(' ', sort keys %nodes) . ')');
        unlike($one->error_log, qr/unavailable/, '  and the store never went down');
    }
    $c->stop;
}
done();
