# conf/auth.conf, the worked example of authentication at the edge, is a
# working configuration: rendered with test paths and ports it passes
# `nginx -t`, and its http block, started for real, logs a user in and lets
# the token (and only the token) through to the application.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use PgTest;
use PgAuth;

my $text = read_file(root_dir() . '/conf/auth.conf');
ok(length $text, 'conf/auth.conf exists');

my $redis = start_redis();
my $up    = start_upstream();
my $port  = free_port();
my $dir   = testdir() . '/conf-auth';
mkdir $dir;
chmod 0755, $dir;

my @subst = (
    ['/usr/lib/nginx/modules/ngx_http_pairguard_module.so', module_path()],
    ['/etc/nginx/pairguard.secret', secret_file()],
    ['/var/log/nginx', $dir],
    ['listen 80;', "listen 127.0.0.1:$port;"],
    ['127.0.0.1:6379', '127.0.0.1:' . $redis->port],
    ['127.0.0.1:3000', '127.0.0.1:' . $up->port],
);
my $rendered = $text;
for my $s (@subst) {
    my ($from, $to) = @$s;
    ok($rendered =~ s/\Q$from\E/$to/g, "the example has \"$from\" to render");
}
$rendered = "pid $dir/nginx.pid;\n$rendered";
$rendered =~ s/^user www-data;\n//m if $> != 0;
write_file("$dir/nginx.conf", $rendered);

my $pid = fork() // die "fork: $!";
if ($pid == 0) {
    open(STDOUT, '>', "$dir/nginx-t.out") or POSIX::_exit(126);
    open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
    { no warnings 'exec'; exec { nginx_binary() } nginx_binary(), '-t', '-p', "$dir/", '-c', "$dir/nginx.conf", '-e', "$dir/error.log"; }
    POSIX::_exit(127);
}
waitpid($pid, 0);
is($? >> 8, 0, 'nginx -t accepts the rendered conf/auth.conf') or diag read_file("$dir/nginx-t.out");

my ($http) = $rendered =~ /^(http \{.*^\})/ms;
ok($http, 'the example has an http block');
$http =~ s/^http \{\n/http {\n    %%HTTP_COMMON%%\n/;
$http =~ s{^\s*(access_log|include)\s[^\n]*\n}{}mg;
$http =~ s/listen 127\.0\.0\.1:\d+;/listen 127.0.0.1:%%PORT%%;/;
my $ng = start_nginx($http);
my $P = $ng->port;

my ($rc, undef, $err) = ctl_auth($redis, "s3cret-pass\n", qw(user add alice --password-stdin));
is($rc, 0, 'pairguardctl adds alice') or diag $err;

is(http_get($P, '/app/echo')->{status}, 401, '/app/ without a token: 401');
my $r = http_post_json($P, '/auth/login', { user => 'alice', password => 's3cret-pass' });
is($r->{status}, 200, 'POST /auth/login with the right password: 200');
my $t = $r->{json}{token} // '';
$r = http_get($P, '/app/echo', headers => { Authorization => "Bearer $t" });
is($r->{status}, 200, '/app/ with the token reaches the application');
is($r->{json}{headers}{'x-pairguard-user'} // '', 'alice', '  with X-Pairguard-User');
ok(!exists $r->{json}{headers}{authorization}, '  and without the token itself');
is(http_post_json($P, '/auth/login', { user => 'alice', password => 'wrong' })->{status}, 403, 'a wrong password: 403');
is(http_get($P, '/api/about')->{status}, 401, 'the Haystack API without credentials: 401');
is(http($P, 'DELETE', '/auth/session', headers => { Authorization => "Bearer $t" })->{status}, 200, 'logout: 200');
is(http_get($P, '/app/echo', headers => { Authorization => "Bearer $t" })->{status}, 401, 'the token no longer works (401)');

done();
