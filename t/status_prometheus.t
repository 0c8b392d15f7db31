# A real Prometheus (Debian's prometheus package) scrapes two nginx nodes'
# pairguard_status every second: the cluster-wide sums it computes are
# exactly what the traffic sent must have produced, every PromQL expression
# of conf/grafana-dashboard.json parses and returns series, and the rules of
# conf/prometheus-alerts.yml pass promtool and load.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use PgTest;

my ($prometheus, $promtool) = map { my $p = qx{sh -c 'command -v $_'}; chomp $p; $p } qw(prometheus promtool);
plan skip_all => 'prometheus not installed (Debian package prometheus; scripts/test.sh installs it)'
    unless $prometheus && $promtool;

my $root = root_dir();
my $rules = "$root/conf/prometheus-alerts.yml";
my $out = qx{$promtool check rules $rules 2>&1};
is($?, 0, 'promtool check rules accepts conf/prometheus-alerts.yml') or diag($out);

my $redis = start_redis();
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=200ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy login key=$remote_addr max_failures=2 window=60s lockout=60s;
    pairguard_policy watch key=$remote_addr max_failures=1 window=60s lockout=60s;

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /login { pairguard login; proxy_pass http://127.0.0.1:%%PORT%%/answer$arg_status; }
        location = /watch { pairguard watch; pairguard_dry_run on; proxy_pass http://127.0.0.1:%%PORT%%/answer401; }
        location = /answer401 { return 401; }
        location = /answer200 { return 200; }
        location = /pairguard/status { pairguard_status; allow 127.0.0.1; deny all; }
    }
}
CONF
my $na = start_nginx($conf, redis => $redis, workers => 2);
my $nb = start_nginx($conf, redis => $redis, workers => 2);
my ($A, $B) = ($na->port, $nb->port);

# ---- Prometheus on a free loopback port, its own storage, stopped by pid -----------

my $dir  = testdir() . '/prometheus';
mkdir $dir;
my $port = free_port();
write_file("$dir/prometheus.yml", <<"YML");
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $rules
scrape_configs:
  - job_name: pairguard
    metrics_path: /pairguard/status
    static_configs:
      - targets: ['127.0.0.1:$A', '127.0.0.1:$B']
YML
my $ppid = PgTest::_spawn([$prometheus, "--config.file=$dir/prometheus.yml", "--storage.tsdb.path=$dir/data",
                           "--web.listen-address=127.0.0.1:$port", '--log.level=warn'], "$dir/prometheus.log");
my $main_pid = $$;
END { PgTest::_stop_pid($ppid, "TERM", 5) if $ppid && $$ == $main_pid }

sub query ($q) {
    my $enc = $q =~ s/([^A-Za-z0-9_.~-])/sprintf('%%%02X', ord $1)/ger;
    my $r = http_get($port, "/api/v1/query?query=$enc");
    return $r->{json} // { status => 'error', error => "HTTP $r->{status}: $r->{body}" };
}
# the single value of an instant query, or undef
sub value ($q) {
    my $j = query($q);
    return undef unless ($j->{status} // '') eq 'success' && @{ $j->{data}{result} // [] } == 1;
    return $j->{data}{result}[0]{value}[1] + 0;
}

ok(wait_until(sub { (value('count(up{job="pairguard"} == 1)') // 0) == 2 }, timeout => 20),
   'Prometheus scrapes both nodes') or diag(read_file("$dir/prometheus.log"));

# ---- traffic whose sums are known --------------------------------------------------

sub login ($port, $from, $status) { http_get($port, "/login?status=$status", from => $from)->{status} }
# 127.0.0.2 locks itself on A; B refuses it (Redis knows)
is(login($A, '127.0.0.2', 401), 401, "A: failure $_") for 1 .. 2;
wait_until(sub { $na->error_log =~ /lockout start/ }, timeout => 3);
is(login($B, '127.0.0.2', 401), 429, 'B: the lock of A holds');
# 127.0.0.3 locks itself on B; A refuses it
is(login($B, '127.0.0.3', 401), 401, "B: failure $_") for 1 .. 2;
wait_until(sub { $nb->error_log =~ /lockout start/ }, timeout => 3);
is(login($A, '127.0.0.3', 401), 429, 'A: the lock of B holds');
# three successes
is(login($_ % 2 ? $A : $B, '127.0.0.4', 200), 200, "success $_") for 1 .. 3;
# a dry run: one failure locks, the next one would have been refused
is(http_get($A, '/watch', from => '127.0.0.5')->{status}, 401, 'dry run: a failure');
wait_until(sub { $na->error_log =~ /lockout start, policy "watch"/ }, timeout => 3);
is(http_get($B, '/watch', from => '127.0.0.5')->{status}, 401, 'dry run: let through');

# ---- what Prometheus sums over the two nodes ----------------------------------------

ok(wait_until(sub { (value('sum(pairguard_lockouts_total)') // -1) == 3 }, timeout => 15),
   'sum(pairguard_lockouts_total) is 3 (two login locks, one dry-run lock)')
    or diag(json_encode(query('pairguard_lockouts_total')));
ok(wait_until(sub { (value('sum(pairguard_decisions_total{policy="login",decision="allowed"})') // -1) == 7 },
              timeout => 10), 'login allowed: 7 over both nodes');
is(value('sum(pairguard_decisions_total{policy="login",decision="locked"})'), 2, 'login locked: 2');
is(value('sum(pairguard_decisions_total{policy="watch",decision="dry_run"})'), 1, 'watch dry_run: 1');
is(value('sum(pairguard_decisions_total{policy="watch",decision="locked"})'), 0, 'watch locked: 0');
is(value('sum(pairguard_outcomes_total{policy="login",outcome="failure"})'), 4, 'login failures: 4');
is(value('sum(pairguard_outcomes_total{policy="login",outcome="success"})'), 3, 'login successes: 3');
is(value('sum by (instance) (pairguard_decisions_total{policy="login",decision="locked",instance="127.0.0.1:' . $B . '"})'),
   1, 'the refusal counted on the node that made it');
is(value('min(pairguard_store_up)'), 1, 'both nodes reach the store');
cmp_ok(value('sum(pairguard_store_latency_seconds_count)'), '>', 0, 'latency observed');

# ---- the dashboard's expressions --------------------------------------------------

sleep 2.5;    # a few scrapes after the traffic, so that rate() has two samples
my $dash = json_decode(read_file("$root/conf/grafana-dashboard.json"));
my @exprs;
for my $p (@{ $dash->{panels} }) {
    push @exprs, map { [$p->{title}, $_->{expr}] } grep { $_->{expr} } @{ $p->{targets} // [] };
}
for my $v (@{ $dash->{templating}{list} }) {
    my $q = ref $v->{query} ? $v->{query}{query} : $v->{query};
    push @exprs, ["variable $v->{name}", $1] if ($q // '') =~ /^label_values\((\w+)/;
}
cmp_ok(scalar(@exprs), '>=', 8, 'the dashboard has its expressions');
for my $e (@exprs) {
    my ($title, $expr) = @$e;
    (my $q = $expr) =~ s/\$__rate_interval/1m/g;
    $q =~ s/\$(instance|policy)\b/.*/g;
    my $j = query($q);
    is($j->{status}, 'success', "dashboard \"$title\" parses: $expr") or diag(json_encode($j));
    cmp_ok(scalar(@{ $j->{data}{result} // [] }), '>', 0, "dashboard \"$title\" returns series");
}

# ---- the alert rules are loaded and evaluate --------------------------------------

my $rj = http_get($port, '/api/v1/rules')->{json};
my @loaded = map { @{ $_->{rules} } } @{ $rj->{data}{groups} // [] };
is(scalar(@loaded), 3, 'the alert rules are loaded');
ok(wait_until(sub {
    my $g = http_get($port, '/api/v1/rules')->{json};
    my @r = map { @{ $_->{rules} } } @{ $g->{data}{groups} // [] };
    @r && !grep { ($_->{health} // '') ne 'ok' } @r;
}, timeout => 5), 'every rule evaluates without error');
is(value('count(ALERTS{alertname="PairguardStoreDown"})'), undef, 'no store-down alert while Redis is up');

PgTest::_stop_pid($ppid, 'TERM', 5);
$ppid = undef;
done();
