# Anyone can make events: wrong guesses lock keys they choose. The error log
# keeps a node's events to at most 20 lines a second and says how many it
# left out, so a flood cannot bury the owner's log; the stream stays capped.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use Time::HiRes qw(sleep time);
use PgTest;

my $redis = start_redis();
my $ng = start_nginx(<<'CONF', redis => $redis, workers => 2, log_level => 'notice');
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=500ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_events_log on;
    pairguard_policy acct key=$http_x_account max_failures=1 window=60s lockout=30s;
    server {
        listen 127.0.0.1:%%PORT%%;
        location = /login { pairguard acct; proxy_pass http://127.0.0.1:%%PORT%%/answer/401; }
        location = /answer/401 { return 401; }
    }
}
CONF
my $P = $ng->port;

my @st = http_burst([$P], 150, sub ($i) { { method => 'GET', path => '/login', headers => { 'X-Account' => "stranger-$i" } } });
is(scalar(grep { $_ == 401 } @st), 150, 'a stranger locks 150 accounts of its choosing at once');
ok(wait_until(sub { ($redis->cmd('XLEN', 'pairguard:{events}-stream') // 0) >= 150 }, timeout => 5),
    'each lock is an event in the stream');
sleep 1.5;
http_get($P, '/login', headers => { 'X-Account' => 'after-the-flood' });    # a later event flushes the count
ok(wait_until(sub { $ng->error_log =~ /events not logged/ }, timeout => 5), 'the log says how many events it left out');

my %per_second;
my $log = $ng->error_log;
$per_second{$1}++ while $log =~ /^(\S+ \S+) \[notice\][^\n]*pairguard: event /mg;
my $max = 0;
$max < $_ and $max = $_ for values %per_second;
cmp_ok($max, '<=', 20, "at most 20 event lines a second ($max)");
cmp_ok(scalar(() = $ng->error_log =~ /pairguard: event /g), '<', 150, 'fewer lines than events');
done();
