# pairguard_status: the node's counters as JSON and as Prometheus text (which
# promtool accepts), exact under two workers and a burst, the same numbers in
# both, dry runs visible, survivors of a reload (and of a changed policy
# set), no client key, address or user in any label, and pairguardctl status.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep);
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=200ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy login   key=$remote_addr max_failures=3 window=60s lockout=60s;
    pairguard_policy watch   key=$remote_addr max_failures=2 window=60s lockout=60s;
    pairguard_policy account key=$http_x_account max_failures=3 window=60s lockout=60s key_required;
    pairguard_policy many    key=$http_x_client max_failures=1000 window=60s lockout=60s;
    pairguard_pairing_policy platforms=telegram;

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /login   { pairguard login; proxy_pass http://127.0.0.1:%%PORT%%/answer/401; }
        location = /ok      { pairguard login; proxy_pass http://127.0.0.1:%%PORT%%/answer/200; }
        location = /watch   { pairguard watch; pairguard_dry_run on; proxy_pass http://127.0.0.1:%%PORT%%/answer/401; }
        location = /account { pairguard account; proxy_pass http://127.0.0.1:%%PORT%%/answer/200; }
        location = /many    { pairguard many; proxy_pass http://127.0.0.1:%%PORT%%/answer/200; }
        location = /private { pairguard_auth_require; proxy_pass http://127.0.0.1:%%PORT%%/answer/200; }
        location = /pair/request { pairguard_pairing request; }

        location = /answer/401 { return 401; }
        location = /answer/200 { return 200 "fine\n"; }

        location = /pairguard/status { pairguard_status; allow 127.0.0.1; deny all; }
    }
}
CONF
my $ng = start_nginx($conf, redis => $redis, upstream => $up, workers => 2);
my $P = $ng->port;

sub status_json () {
    my $r = http_get($P, '/pairguard/status');
    is($r->{status}, 200, 'the status location answers') or diag($r->{raw});
    return $r->{json};
}
sub status_text (%h) {
    my $r = http_get($P, '/pairguard/status?format=prometheus', %h);
    return $r->{body};
}
# value of one sample in the exposition text
sub sample ($text, $series) {
    return $text =~ /^\Q$series\E (\S+)$/m ? $1 + 0 : undef;
}

# ---- traffic whose counts are known ----------------------------------------

# 3 failures lock 127.0.0.2; after the settle's reply the node's verdict cache
# refuses the next 2 without Redis
is(http_get($P, '/login', from => '127.0.0.2')->{status}, 401, "failure $_") for 1 .. 3;
wait_until(sub { $ng->error_log =~ /lockout start, policy "login"/ }, timeout => 3);
sleep 0.3;
is(http_get($P, '/login', from => '127.0.0.2')->{status}, 429, "locked $_") for 1 .. 2;
# one success from another address
is(http_get($P, '/ok', from => '127.0.0.3')->{status}, 200, 'a success passes');

# the dry run: 2 failures lock, the next 2 would have been refused
is(http_get($P, '/watch', from => '127.0.0.4')->{status}, 401, "dry run failure $_") for 1 .. 2;
wait_until(sub { $ng->error_log =~ /lockout start, policy "watch"/ }, timeout => 3);
sleep 0.3;
is(http_get($P, '/watch', from => '127.0.0.4')->{status}, 401, "dry run lets through $_") for 1 .. 2;

# key_required: no X-Account
is(http_get($P, '/account')->{status}, 400, 'no key: 400');
is(http_get($P, '/account', headers => { 'X-Account' => 'alice@example.org' })->{status}, 200, 'a key: allowed');

# 200 at once over the two workers
my @codes = http_burst([$P], 200, sub ($i) { { path => '/many', headers => { 'X-Client' => "c$i" } } });
is(scalar(grep { $_ == 200 } @codes), 200, 'a burst of 200 passes');

# auth and pairing answers
is(http_get($P, '/private', headers => { Authorization => 'Bearer not-a-token' })->{status}, 401, 'bad token: 401');
is(http_post_json($P, '/pair/request', { platform => 'telegram', user_id => 'u-secret-42' })->{status}, 201,
   'a pairing code');
is(http_post_json($P, '/pair/request', { platform => 'nope', user_id => 'u-secret-42' })->{status}, 400,
   'an unknown platform');

# ---- what the node says -------------------------------------------------------

my $j;
wait_until(sub { $j = status_json(); ($j->{policies}{many}{outcomes}{success} // 0) == 200 }, timeout => 5);
my $login = $j->{policies}{login};
is_deeply($login->{decisions}, { allowed => 4, locked => 2, busy => 0, key_required => 0, dry_run => 0 },
          'login: 4 allowed, 2 locked');
is_deeply($login->{outcomes}, { failure => 3, success => 1, neutral => 0 },
          'login: 3 failures, 1 success (refusals reserve nothing, so settle nothing)')
    or diag(json_encode($login));
is($login->{lockouts}, 1, 'login: one lockout');
is($login->{local_verdicts}, 2, 'login: both refusals from shared memory');
is($j->{policies}{watch}{decisions}{dry_run}, 2, 'dry run: 2 would have been refused');
is($j->{policies}{watch}{decisions}{allowed}, 2, 'dry run: 2 allowed before the lock');
is($j->{policies}{watch}{decisions}{locked}, 0, 'dry run: none refused');
is($j->{policies}{account}{decisions}{key_required}, 1, 'key_required counted');
is($j->{policies}{account}{decisions}{allowed}, 1, 'the keyed request allowed');
is($j->{policies}{many}{decisions}{allowed}, 200, 'the burst: exactly 200 allowed over two workers');
is($j->{auth}{session}{invalid_token}, 1, 'auth: one invalid token');
is($j->{pairing}{request}{ok}, 1, 'pairing: one code handed out');
is($j->{pairing}{request}{invalid_request}, 1, 'pairing: one invalid request');
is($j->{store}{up}, 1, 'the store is up');
cmp_ok($j->{store}{commands}, '>', 0, 'store commands counted (batched: fewer than the requests)');
is($j->{store}{latency_seconds}{count}, $j->{store}{commands} - 0, 'every command has a latency')
    or diag(json_encode($j->{store}));

# ---- Prometheus text: the same numbers, promtool accepts it ---------------------

my $text = status_text();
like(http_get($P, '/pairguard/status?format=prometheus')->{headers}{'content-type'} // '',
     qr{^text/plain; version=0\.0\.4}, 'exposition format 0.0.4');
is(sample($text, 'pairguard_decisions_total{policy="login",decision="locked"}'), 2, 'prometheus: locked');
is(sample($text, 'pairguard_decisions_total{policy="watch",decision="dry_run"}'), 2, 'prometheus: dry_run');
is(sample($text, 'pairguard_lockouts_total{policy="login"}'), 1, 'prometheus: lockouts');
is(sample($text, 'pairguard_local_verdicts_total{policy="login"}'), 2, 'prometheus: local verdicts');
is(sample($text, 'pairguard_decisions_total{policy="many",decision="allowed"}'), 200, 'prometheus: the burst');
is(sample($text, 'pairguard_store_up'), 1, 'prometheus: store up');
is(sample($text, 'pairguard_store_latency_seconds_bucket{le="+Inf"}'),
   sample($text, 'pairguard_store_latency_seconds_count'), 'histogram: +Inf bucket is the count');
is(sample($text, 'pairguard_auth_total{method="session",result="invalid_token"}'), 1, 'prometheus: auth');
is(sample($text, 'pairguard_pairing_total{endpoint="request",result="ok"}'), 1, 'prometheus: pairing');
like(status_text(headers => { Accept => 'text/plain;version=0.0.4;q=0.5,*/*;q=0.1' }), qr/^# HELP /,
     'Accept: text/plain gives Prometheus text');
like(http_get($P, '/pairguard/status', headers => { Accept => 'application/json' })->{body}, qr/^\{"store"/,
     'JSON by default');

for my $m (qw(pairguard_store_up pairguard_store_commands_total pairguard_store_errors_total
              pairguard_store_latency_seconds pairguard_decisions_total pairguard_outcomes_total
              pairguard_lockouts_total pairguard_local_verdicts_total pairguard_pairing_total pairguard_auth_total)) {
    like($text, qr/^# HELP $m \S.*\n# TYPE $m (counter|gauge|histogram)$/m, "$m has HELP and TYPE");
}

unlike($text . json_encode($j), qr/127\.0\.0\.|alice|u-secret-42|not-a-token|c1\b/,
       'no address, key, user or token in any label or value');
my @labels = $text =~ /\{([^}]*)\}/g;
my %allowed = map { $_ => 1 } qw(policy decision outcome reason le endpoint result method);
is(scalar(grep { grep { !$allowed{$_} } /(\w+)="/g } @labels), 0, 'only the fixed label names');

SKIP: {
    my $promtool = qx{sh -c 'command -v promtool'};
    chomp $promtool;
    skip 'promtool not installed (Debian package prometheus; scripts/test.sh installs it)', 1 unless $promtool;
    my $f = testdir() . '/metrics.txt';
    write_file($f, $text);
    my $out = `promtool check metrics < $f 2>&1`;
    is($?, 0, 'promtool check metrics accepts the output') or diag($out);
}

is(http($P, 'POST', '/pairguard/status', body => '')->{status}, 405, 'only GET and HEAD');

# ---- pairguardctl status ------------------------------------------------------------

my $ctl = ctl_path();
SKIP: {
    skip "pairguardctl not built: $ctl", 3 unless -x $ctl;
    my $table = `$ctl status --url http://127.0.0.1:$P/pairguard/status 2>&1`;
    is($?, 0, 'pairguardctl status exits 0') or diag($table);
    like($table, qr/^login\s+4\s+2\s+0\s+0\s+0\s+3\s+1\s/m, 'the table row of login') or diag($table);
    my $bad = `$ctl status --url http://127.0.0.1:$P/answer/200 2>&1`;
    isnt($? >> 8, 0, 'a URL that is not a status location fails');
}

# ---- reload: the zone is reused -------------------------------------------------------

$ng->reload;
my $after = status_json();
is_deeply($after->{policies}{login}, $j->{policies}{login}, 'counters survive a reload');
is($after->{pairing}{request}{ok}, 1, 'pairing counters survive a reload');

# a changed policy set: counters move by policy name
my $file = $ng->dir . '/nginx.conf';
my $c = read_file($file);
$c =~ s/(pairguard_policy many[^\n]*\n)/$1    pairguard_policy added key=\$remote_addr max_failures=3 window=60s lockout=60s;\n/
    or die 'no policy line';
$c =~ s/\n(\s*)pairguard_policy watch[^\n]*\n/\n/ or die 'no watch';
$c =~ s/location = \/watch[^\n]*\n// or die 'no watch location';
write_file($file, $c);
$ng->reload;
my $moved = status_json();
is_deeply($moved->{policies}{login}, $j->{policies}{login}, 'a kept policy keeps its counters when others change');
is($moved->{policies}{many}{decisions}{allowed}, 200, 'so does one whose index moved');
ok(!exists $moved->{policies}{watch}, 'a removed policy is gone');
is($moved->{policies}{added}{decisions}{allowed}, 0, 'a new policy starts at zero');
is(http_get($P, '/login', from => '127.0.0.2')->{status}, 429, 'still locked');
is(status_json()->{policies}{login}{decisions}{locked}, 3, 'and counted on the new layout');

done();
