# No secret leaves the request: after guesses, a lockout, a refusal and a
# successful pairing with known codes, neither the error log (at debug level),
# nor the access log, nor any Redis key or value holds a code.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();
my $ng    = start_nginx(<<'CONF', redis => $redis, upstream => $up, log_level => 'debug');
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=100ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy claim_ip   key=$remote_addr max_failures=20 window=10s lockout=10s;
    pairguard_policy claim_code key=$pairguard_body_pairing_code max_failures=5 window=10s lockout=10s;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /api/provision/pair {
            pairguard claim_ip;
            pairguard claim_code;
            pairguard_failure_status 404;
            pairguard_neutral_status 410;
            proxy_pass http://backend;
        }
    }
}
CONF

my $port = $ng->port;
my %code = (wrong => '483920', form => '739158', right => '615204', stale => '204817');

$up->register(code => $code{right});
$up->register(code => $code{stale}, age => 100000);

my @st = map { http_post_json($port, '/api/provision/pair', { pairing_code => $code{wrong} })->{status} } 1 .. 6;
is_deeply(\@st, [(404) x 5, 429], 'a wrong code tried six times: five 404s, then 429');
@st = map { http_post_form($port, '/api/provision/pair', { pairing_code => $code{form} })->{status} } 1 .. 3;
is_deeply(\@st, [(404) x 3], 'a wrong code sent as a form: 404s');
is(http_post_json($port, '/api/provision/pair', { pairing_code => $code{stale} })->{status}, 410, 'an expired code: 410');
is(http_post_json($port, '/api/provision/pair', { pairing_code => $code{right}, name => 'Lobby' })->{status}, 200,
    'the right code pairs');
like($ng->error_log, qr/lockout start, policy "claim_code", key [0-9a-f]{8}/, 'the lockout of the code is logged by its label');

# a code is present only as a token of its own, not inside a longer number or hex run
sub holds ($hay, $needle) { $hay =~ /(?<![0-9A-Za-z])\Q$needle\E(?![0-9A-Za-z])/ }

$ng->stop;    # everything written
my $err = $ng->error_log_for_secrets;
ok(length $err > 10000, 'the error log was written at debug level');
for my $what (sort keys %code) {
    my $c = $code{$what};
    my @lines = grep { holds($_, $c) } split /\n/, $err;
    ok(!@lines, "the error log never holds the $what code") or diag join "\n", @lines[0 .. ($#lines < 4 ? $#lines : 4)];
}
my $acc = $ng->access_log;
ok(!(grep { holds($acc, $_) } values %code), 'the access log holds none of the codes');

my $all = $redis->dump_all;
ok(scalar(keys %$all), 'Redis holds the guard state');
for my $what (sort keys %code) {
    my $c = $code{$what};
    my @leaks = grep { holds($_, $c) || holds($all->{$_}{value} // '', $c) || index($all->{$_}{dump} // '', $c) >= 0 }
        keys %$all;
    ok(!@leaks, "no Redis key or value holds the $what code") or diag "leaky keys: @leaks";
}
my @ip = grep { index($_, '127.0.0.1') >= 0 || index($all->{$_}{dump} // '', '127.0.0.1') >= 0 } keys %$all;
ok(!@ip, 'no Redis key or value holds the client address');

done();
