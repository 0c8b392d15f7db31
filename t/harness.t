# The test harness itself, with a plain nginx (no pairguard module): Redis,
# the demo upstream, nginx start / reload / stop, the HTTP helpers, commands
# and processes, and a Redis subscriber.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest qw(-nomodule);

my $redis = start_redis();
is($redis->cmd('PING'), 'PONG', 'redis answers PING');
is($redis->cmd('SET', 'k', "a\r\nb"), 'OK', 'redis stores a value with CRLF');
is($redis->cmd('GET', 'k'), "a\r\nb", 'and gives it back byte for byte');
is_deeply([$redis->scan_keys], ['k'], 'SCAN lists the key');

my $up = start_upstream(code_ttl => 900);
my $ng = start_nginx(<<'CONF', upstream => $up, module => 0, workers => 2);
http {
    %%HTTP_COMMON%%
    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }
    log_format addr '$remote_addr $status';
    server {
        listen 127.0.0.1:%%PORT%%;
        access_log %%DIR%%/addr.log addr;
        location / { proxy_pass http://backend; }
    }
}
CONF

my @w = $ng->worker_pids;
is(scalar @w, 2, 'nginx runs two workers');

my $code = $up->register;
like($code, qr/^\d{6}$/, 'the upstream hands out six-digit codes');
my $r = http_post_json($ng->port, '/api/provision/pair', { pairing_code => '000000' });
is($r->{status}, 404, 'an unknown code is 404 through nginx');
is($r->{json}{error}, 'unknown code', 'with a JSON error body');
$r = http_post_form($ng->port, '/api/provision/pair', { pairing_code => $code, name => 'Lobby' });
is($r->{status}, 200, 'a form-encoded right code pairs');
is($r->{json}{name}, 'Lobby', 'and names the display');
$r = http_post_json($ng->port, '/api/provision/pair', { pairing_code => $code });
is($r->{status}, 404, 'a code is consumed by pairing');
my $old = $up->register(age => 1000);
is(http_post_json($ng->port, '/api/provision/pair', { pairing_code => $old })->{status}, 410,
    'a backdated code is expired (410)');
is(http_post_json($ng->port, '/api/provision/pair', {})->{status}, 400, 'a missing code is 400');

$r = http($ng->port, 'PUT', '/echo?x=1', headers => { 'X-Odd' => 'yes' }, body => 'hello', from => '127.0.0.7');
is($r->{json}{method}, 'PUT', 'echo shows the method');
is($r->{json}{headers}{'x-odd'}, 'yes', 'echo shows request headers, lower-cased');
is($r->{json}{body}, 'hello', 'echo shows the body');
$r = http($ng->port, 'POST', '/echo', body => 'chunky body', chunked => 1);
is($r->{json}{body}, 'chunky body', 'a chunked request body reaches the upstream');
like($ng->access_log('addr.log'), qr/^127\.0\.0\.7 200$/m, 'a request from 127.0.0.7 has that $remote_addr');

is(http_get($ng->port, '/status/503')->{status}, 503, '/status/NNN answers NNN');

$up->reset;
my @st = http_burst($ng->port, 50, sub ($i) { { method => 'GET', path => '/status/' . ($i % 2 ? 404 : 200) } });
is(scalar(grep { $_ == 404 } @st), 25, 'a burst of 50 gets 25 answers 404');
is(scalar(grep { $_ == 200 } @st), 25, 'and 25 answers 200');
my $s = $up->stats;
is($s->{requests}, 50, 'the upstream counted the 50 requests');
is($s->{by_status}{404}, 25, 'and 25 of them 404');

my $slow = start_upstream(delay_ms => 200);
my $t0 = Time::HiRes::time();
@st = http_burst($slow->port, 200, sub ($i) { { path => '/status/200' } });
my $took = Time::HiRes::time() - $t0;
is(scalar(grep { $_ == 200 } @st), 200, 'the slow upstream answers 200 concurrent requests');
cmp_ok($took, '<', 5, 'concurrently, not one after the other');

$ng->reload;
is(http_get($ng->port, '/status/204')->{status}, 204, 'nginx answers after a reload');

$redis->sigstop;
my $t1 = Time::HiRes::time();
ok(!defined eval { $redis->cmd_timeout(0.3, 'PING') }, 'a stopped redis does not answer');
$redis->sigcont;
is($redis->cmd('PING'), 'PONG', 'and answers again after SIGCONT');
$redis->restart;
is($redis->dbsize, 0, 'a restarted redis is empty');

my ($rc, $out) = nginx_t("http { %%HTTP_COMMON%% server { listen 127.0.0.1:%%PORT%%; bogus_directive on; } }", module => 0);
isnt($rc, 0, 'nginx -t fails on a bad config');
like($out, qr/unknown directive "bogus_directive"/, 'and says why');
($rc, $out) = nginx_t("http { %%HTTP_COMMON%% server { listen 127.0.0.1:%%PORT%%; } }", module => 0);
is($rc, 0, 'nginx -t passes a good config') or diag $out;

my $err;
($rc, $out, $err) = run_cmd(['sh', '-c', 'cat; echo "$PG_H" >&2; exit 3'], stdin => "in\n", env => { PG_H => 'env' });
is_deeply([$rc, $out, $err], [3, "in\n", "env\n"], 'run_cmd gives a command stdin and env, and returns its status, stdout and stderr');
my $p = start_process(['sleep', '60']);
ok($p->alive, 'start_process runs a process');
my $pid = $p->pid;
$p->stop;
ok(!kill(0, $pid), 'and stop ends it, by its pid');

# traffic while something happens: counted; an action that dies stops the
# traffic's child before the error goes on (it would hold prove's pipe)
my ($tst) = traffic_during('harness-ok', sub ($n) { Time::HiRes::sleep(0.01); 200 }, sub { Time::HiRes::sleep(0.2) });
ok(($tst->{200} // 0) > 10, 'traffic_during counts the requests made meanwhile');
my @kids_before = PgTest::_children_of($$);
ok(!eval { traffic_during('harness-die', sub ($n) { Time::HiRes::sleep(0.01); 200 }, sub { die "boom\n" }); 1 },
    'an action that dies makes traffic_during die');
is($@, "boom\n", '  with its error');
is(scalar(PgTest::_children_of($$)), scalar(@kids_before), '  and its traffic child is gone');

my $sub = $redis->subscriber('pg:test');
$redis->cmd('PUBLISH', 'pg:test', "one\r\n");
$redis->cmd('PUBLISH', 'pg:test', 'two');
is_deeply([$sub->messages], ["one\r\n", 'two'], 'a subscriber gets what is published, in order');
is_deeply([$sub->messages(0.1)], [], 'and each message once');

# A port free_port() handed out may be taken by another process before the
# demo upstream binds it (prove -j2): here another demo upstream holds it.
# start_upstream() must notice (the answer of /__stats is not its own
# process's) and move to another port, not return an upstream that died.
{
    my $other = start_upstream();
    my $taken = $other->port;
    my $first = 1;
    my $orig = \&PgTest::free_port;
    no warnings 'redefine';
    local *PgTest::free_port = sub { if ($first) { $first = 0; return $taken } $orig->() };
    my $mine = start_upstream();
    ok(PgTest::_alive($mine->pid), 'an upstream whose port was taken first starts on another port, alive');
    isnt($mine->port, $taken, '  not on the taken port');
    is(PgTest::http($mine->port, 'GET', '/__stats')->{json}{pid}, $mine->pid, '  and /__stats there is its own');
    $mine->stop;
    $other->stop;
}

done();
