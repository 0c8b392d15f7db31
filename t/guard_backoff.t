# Escalating lockouts (backoff, capped by max_lockout), dry run, and another
# refusal status.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(time sleep);
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();
my $ng    = start_nginx(<<'CONF', redis => $redis, upstream => $up);
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=100ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy esc    key=$remote_addr max_failures=2 window=1s lockout=1s backoff=2 max_lockout=3s;
    pairguard_policy dry    key=$remote_addr max_failures=2 window=5s lockout=5s;
    pairguard_policy strict key=$remote_addr max_failures=2 window=5s lockout=5s;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        # /esc/404 is a failure, /esc/410 counts nothing
        location /esc/ {
            pairguard esc;
            pairguard_failure_status 404;
            pairguard_neutral_status 410;
            proxy_pass http://backend/status/;
        }

        location /dry/ {
            pairguard dry;
            pairguard_failure_status 404;
            pairguard_dry_run on;
            add_header X-Guard-Decision "$pairguard_decision" always;
            proxy_pass http://backend/status/;
        }

        location /d403/ {
            pairguard strict;
            pairguard_failure_status 404;
            pairguard_deny_status 403;
            proxy_pass http://backend/status/;
        }
    }
}
CONF

my $port = $ng->port;

# --- escalation -------------------------------------------------------------

# Two failures lock the address; returns (Retry-After, seconds until a neutral
# request gets through again).
sub lock_and_measure ($from) {
    my @st = map { http_get($port, '/esc/404', from => $from)->{status} } 1 .. 2;
    my $t0 = time;
    my $r = http_get($port, '/esc/410', from => $from);
    return (undef, undef, "failures answered @st, then $r->{status}") unless "@st" eq '404 404' && $r->{status} == 429;
    my $ra = $r->{headers}{'retry-after'};
    while (time - $t0 < 8) {
        sleep 0.1;
        my $s = http_get($port, '/esc/410', from => $from)->{status};
        return ($ra, time - $t0, '') if $s == 410;
    }
    return ($ra, undef, 'still locked after 8 s');
}

my $who = '127.0.0.21';
my ($ra1, $d1, $e1) = lock_and_measure($who);
is($ra1, 1, 'the first lockout has Retry-After 1') or diag $e1;
ok(defined $d1 && $d1 > 0.7 && $d1 < 1.6, sprintf('the first lockout lasts about 1 s (%.2f)', $d1 // -1));

my ($ra2, $d2, $e2) = lock_and_measure($who);
is($ra2, 2, 'the second lockout of the same key has Retry-After 2 (backoff=2)') or diag $e2;
ok(defined $d2 && $d2 > 1.7 && $d2 < 2.6, sprintf('the second lockout lasts about 2 s (%.2f)', $d2 // -1));

my ($ra3, $d3, $e3) = lock_and_measure($who);
is($ra3, 3, 'the third lockout is capped by max_lockout (3, not 4)') or diag $e3;
ok(defined $d3 && $d3 > 2.7 && $d3 < 3.6, sprintf('the third lockout lasts about 3 s (%.2f)', $d3 // -1));

my $log = $ng->error_log;
my @durations = $log =~ /lockout start, policy "esc", key [0-9a-f]{8}, (\d+)s/g;
is_deeply(\@durations, [1, 2, 3], 'the log shows lockouts of 1 s, 2 s and 3 s');

my ($ra_other) = lock_and_measure('127.0.0.22');
is($ra_other, 1, 'another key starts again at the base lockout');

# --- dry run ------------------------------------------------------------------

$up->reset;
my @r = map { http_get($port, '/dry/404', from => '127.0.0.23') } 1 .. 6;
is_deeply([map { $_->{status} } @r], [(404) x 6], 'dry run: six failures in a row are all answered by the upstream');
is($up->count('/status/404'), 6, 'dry run: the upstream saw all six');
is($r[-1]{headers}{'x-guard-decision'}, 'allow', 'dry run: $pairguard_decision stays allow');
like($ng->error_log, qr/\[notice\].*pairguard: dry run, would refuse, policy "dry", key [0-9a-f]{8}/,
    'dry run: the refusal it would have made is logged at notice');

# --- another deny status -------------------------------------------------------

my @st = map { http_get($port, '/d403/404', from => '127.0.0.24')->{status} } 1 .. 2;
my $r = http_get($port, '/d403/404', from => '127.0.0.24');
is_deeply([@st, $r->{status}], [404, 404, 403], 'pairguard_deny_status 403: the third attempt gets 403');
like($r->{headers}{'retry-after'} // '', qr/^[1-5]$/, 'pairguard_deny_status 403: with Retry-After');
is(($r->{json} // {})->{error}, 'too_many_attempts', 'pairguard_deny_status 403: with the too_many_attempts body');
is($up->count('/status/404'), 8, 'the refused attempt did not reach the upstream');

done();
