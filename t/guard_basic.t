# Seed 002's device-pairing endpoint guarded at the edge: unknown codes are
# guesses and lock the address out, expired codes do not count, a success
# forgives, a lock lifts after its time, and Redis holds only HMACs.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();
my $ng    = start_nginx(<<'CONF', redis => $redis, upstream => $up);
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=100ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy claim_ip   key=$remote_addr max_failures=5 window=2s lockout=2s;
    pairguard_policy claim_code key=$pairguard_body_pairing_code max_failures=5 window=2s lockout=2s;

    log_format guard '$remote_addr $status $pairguard_decision "$pairguard_policy" "$pairguard_retry_after"';
    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /api/provision/pair {
            pairguard claim_ip;
            pairguard claim_code;
            pairguard_failure_status 404;     # unknown code: a guess
            pairguard_neutral_status 410;     # expired code: not a guess
            add_header X-Guard-Decision "$pairguard_decision" always;
            add_header X-Guard-Policy "$pairguard_policy" always;
            add_header X-Guard-Retry-After "$pairguard_retry_after" always;
            access_log %%DIR%%/guard.log guard;
            proxy_pass http://backend;
        }

        location / {
            proxy_pass http://backend;
        }
    }
}
CONF

my (%issued, @used_codes);
my $next_wrong = 500000;
sub wrong_code () {
    my $c;
    do { $c = sprintf('%06d', $next_wrong++) } while $issued{$c};
    push @used_codes, $c;
    return $c;
}
sub right_code (%o) {
    my $c = $up->register(%o);
    $issued{$c} = 1;
    push @used_codes, $c;
    return $c;
}
sub pair ($code, $from) {
    return http_post_json($ng->port, '/api/provision/pair', { pairing_code => $code, name => 'Lobby' }, from => $from);
}
sub pairs_seen () { $up->count('/api/provision/pair') }

# --- unknown codes lock the address ----------------------------------------

my $attacker = '127.0.0.11';
my @st = map { pair(wrong_code(), $attacker)->{status} } 1 .. 5;
is_deeply(\@st, [(404) x 5], 'five unknown codes reach the upstream and get 404');
is(pairs_seen(), 5, 'the upstream saw the five guesses');

my $r = pair(wrong_code(), $attacker);
is($r->{status}, 429, 'the sixth guess from the address is refused with 429');
like($r->{headers}{'retry-after'} // '', qr/^\d+$/, 'the refusal has a numeric Retry-After');
my $ra = $r->{headers}{'retry-after'} // 0;
ok($ra >= 1 && $ra <= 2, "Retry-After ($ra) is within the 2 s lockout");
like($r->{headers}{'content-type'} // '', qr{^application/json}, 'the refusal is JSON');
is_deeply($r->{json}, { error => 'too_many_attempts', retry_after => 0 + $ra },
    'the body says too_many_attempts with the same retry_after');
is(pairs_seen(), 5, 'the upstream never saw the refused guess');

is($r->{headers}{'x-guard-decision'}, 'deny', '$pairguard_decision is deny on the refusal');
is($r->{headers}{'x-guard-policy'}, 'claim_ip', '$pairguard_policy names the policy that refused');
is($r->{headers}{'x-guard-retry-after'}, $ra, '$pairguard_retry_after matches Retry-After');

my $good = right_code();
is(pair($good, $attacker)->{status}, 429, 'even a right code from the locked address is refused');
is(pair($good, '127.0.0.12')->{status}, 200, 'the same code still pairs from another address (it never reached the upstream)');

my $lock_line = qr/\[notice\].*pairguard: lockout start, policy "claim_ip", key ([0-9a-f]{8}), 2s/;
my ($label) = $ng->error_log =~ $lock_line;
ok($label, 'the lockout start is logged at notice with policy, key label and duration');

my $log = wait_until(sub { my $l = $ng->access_log('guard.log'); $l =~ /^127\.0\.0\.11 429 /m ? $l : undef }, timeout => 2) // '';
like($log, qr/^127\.0\.0\.11 404 allow "-?" "-?"$/m, 'the access log shows allowed guesses as allow');
like($log, qr/^127\.0\.0\.11 429 deny "claim_ip" "$ra"$/m, 'the access log shows the refusal with policy and retry-after');

# --- old failures leave the window -----------------------------------------

my $slow = '127.0.0.15';
@st = map { pair(wrong_code(), $slow)->{status} } 1 .. 4;

# --- the lock lifts after its time -----------------------------------------

sleep $ra + 0.3;
is(pair(wrong_code(), $attacker)->{status}, 404, 'after Retry-After seconds the address reaches the upstream again');
ok(wait_until(sub { $ng->error_log =~ /\[notice\].*pairguard: lockout end, policy "claim_ip", key \Q$label\E/ }, timeout => 2),
    'the lockout end is logged with the same key label') if $label;

push @st, map { pair(wrong_code(), $slow)->{status} } 1 .. 4;
is_deeply(\@st, [(404) x 8], 'four failures, a pause longer than the window, four more: none refused');

# --- expired codes are not guesses -----------------------------------------

my $stale = right_code(age => 1000);
my $office = '127.0.0.13';
@st = map { pair($stale, $office)->{status} } 1 .. 8;
is_deeply(\@st, [(410) x 8], 'eight claims of an expired code all reach the upstream (410), none locks');

# --- a success forgives ----------------------------------------------------

my $typo = '127.0.0.14';
@st = map { pair(wrong_code(), $typo)->{status} } 1 .. 4;
is(pair(right_code(), $typo)->{status}, 200, 'a right code after four typos pairs');
push @st, map { pair(wrong_code(), $typo)->{status} } 1 .. 5;
is_deeply(\@st, [(404) x 9], 'four typos, a success, then five typos: none refused (the success reset the count)');
is(pair(wrong_code(), $typo)->{status}, 429, 'the sixth failure since the success is refused');

# --- a bulk rollout from one address never locks ---------------------------

my $rollout = '127.0.0.16';
my (@fail, @ok);
for (1 .. 20) {
    push @fail, pair(wrong_code(), $rollout)->{status} for 1 .. 2;
    push @ok, pair(right_code(), $rollout)->{status};
}
is_deeply(\@fail, [(404) x 40], 'a rollout of 20 displays with two typos each never gets refused');
is_deeply(\@ok, [(200) x 20], 'and every display pairs');

# --- Redis holds HMACs only ------------------------------------------------

my $all = $redis->dump_all;
my @keys = sort keys %$all;
ok(scalar @keys, 'the guard keeps its state in Redis');
# (and the event stream, whose entries hold only HMAC tags: t/events.t)
my @odd = grep { !/^pairguard:\{[A-Za-z0-9_-]{16}\}$/ && $_ ne 'pairguard:{events}-stream' } @keys;
ok(!@odd, 'every key looks like pairguard:{<16 base64url chars>}') or diag "odd keys: @odd";
my @secrets = (@used_codes, map { "127.0.0.$_" } 11 .. 16);
# a code counts as present only as a token of its own, not inside a longer number
sub holds ($hay, $needle) { $hay =~ /(?<![0-9A-Za-z.])\Q$needle\E(?![0-9A-Za-z])/ }
my @leaks = grep {
    my $k = $_;
    my $blob = join "\0", $k, $all->{$k}{value} // '', $all->{$k}{dump} // '';
    grep { holds($blob, $_) } @secrets;
} @keys;
ok(!@leaks, 'no Redis key or value holds a pairing code or an address in plain form') or diag "leaky keys: @leaks";

my $err = $ng->error_log_for_secrets;
my @in_log = grep { holds($err, $_) } @used_codes;
ok(!@in_log, 'the error log holds none of the codes')
    or diag "codes in log: @in_log; lines: ", join '', grep { my $l = $_; grep { holds($l, $_) } @in_log } split /^/, $err;

done();
