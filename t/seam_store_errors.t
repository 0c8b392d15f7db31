# When Redis answers errors instead of results (here: out of memory under
# maxmemory noeviction) every guarded request is still decided, by the
# store_down mode, the error is logged once per second with Redis' own words,
# and a full local zone costs a warning, never a hang: nothing in the module
# waits on a lock another worker could leave held.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();
my $ng    = start_nginx(<<'CONF', redis => $redis, upstream => $up);
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=200ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_zone 64k;
    pairguard_policy ip key=$http_x_client max_failures=2 window=30s lockout=30s;
    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /api { pairguard ip; rewrite ^ /status/404 break; proxy_pass http://backend; }
    }
}
CONF
my $port = $ng->port;

is(http($port, 'POST', '/api', headers => { 'X-Client' => 'warmup' })->{status}, 404, 'Redis answers normally first');

$redis->cmd('CONFIG', 'SET', 'maxmemory-policy', 'noeviction');
$redis->cmd('CONFIG', 'SET', 'maxmemory', '1');
my $mark = $ng->log_mark;
my @st = map { http($port, 'POST', '/api', headers => { 'X-Client' => 'oom' })->{status} } 1 .. 4;
is("@st", '404 404 429 429', 'with Redis refusing writes, the local store still decides and locks');
like($ng->log_since($mark), qr/script guard_\w+ failed: OOM command not allowed[^\n]*\n/,
    'the error reply is logged in Redis\' own words, whole');
$redis->cmd('CONFIG', 'SET', 'maxmemory', '0');

# many distinct keys into a tiny zone while Redis is gone: a full zone warns
$redis->sigstop;
my @res = http_burst_responses([$port], 300, sub ($i) {
    { method => 'POST', path => '/api', headers => { 'X-Client' => "many-$i" } }
}, timeout => 20);
$redis->sigcont;
is(scalar(grep { $_->{timeout} || !$_->{status} } @res), 0, 'three hundred keys into a 64k zone with Redis hung: all answered');
ok(wait_until(sub { http($port, 'POST', '/api', headers => { 'X-Client' => 'after' })->{status} == 404 }, timeout => 5),
    'and requests are decided again afterwards');
done();
