# conf/pairing.conf, the worked example of the pairing flow, is a working
# configuration: rendered with test paths and ports it passes `nginx -t`, and
# its http block, started for real, does what its comments say (the bot for
# paired users only, a per-address cap on code requests, admin endpoints on
# loopback only).
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use POSIX ();
use PgTest;

my $file = root_dir() . '/conf/pairing.conf';
my $text = read_file($file);
ok(length $text, 'conf/pairing.conf exists');

my $redis = start_redis();
my $up    = start_upstream();
my $port  = free_port();
my $dir   = testdir() . '/conf-pairing';
mkdir $dir;
chmod 0755, $dir;

# what a test machine has instead of a production one
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
    my $n = $rendered =~ s/\Q$from\E/$to/g;
    ok($n, "the example has \"$from\" to render");
}
$rendered = "pid $dir/nginx.pid;\n$rendered" unless $rendered =~ /^pid /m;
write_file("$dir/nginx.conf", $rendered);

# --- nginx -t on the whole file ----------------------------------------------

my $pid = fork() // die "fork: $!";
if ($pid == 0) {
    open(STDOUT, '>', "$dir/nginx-t.out") or POSIX::_exit(126);
    open(STDERR, '>&', \*STDOUT) or POSIX::_exit(126);
    { no warnings 'exec'; exec { nginx_binary() } nginx_binary(), '-t', '-p', "$dir/", '-c', "$dir/nginx.conf", '-e', "$dir/error.log"; }
    POSIX::_exit(127);
}
waitpid($pid, 0);
my $rc = $? >> 8;
my $out = read_file("$dir/nginx-t.out");
is($rc, 0, 'nginx -t accepts the rendered conf/pairing.conf') or diag $out;
like($out, qr/syntax is ok/, '  "syntax is ok"');

# --- its http block, running ---------------------------------------------------

my ($http) = $rendered =~ /^(http \{.*^\})/ms;
ok($http, 'the example has an http block');
$http =~ s/^http \{\n/http {\n    %%HTTP_COMMON%%\n/;
$http =~ s{^\s*(access_log|include)\s[^\n]*\n}{}mg;    # the harness's access log; no mime types needed
$http =~ s/listen 127\.0\.0\.1:\d+;/listen 127.0.0.1:%%PORT%%;/;
my $ng = start_nginx($http, workers => 2);
my $P = $ng->port;

sub request_code ($user, %o) {
    return http_post_json($P, '/pairing/request', { platform => $o{platform} // 'telegram', user_id => $user, user_name => "N $user" },
        from => $o{from} // '127.0.0.5');
}

# public request endpoint, capped per address
my @r = map { request_code("u$_") } 1 .. 10;
is_deeply([map { $_->{status} } @r], [201, 201, 201, (429) x 7], 'ten code requests from one address: 3 codes, then too_many_pending');
is($r[3]{json}{error} // '', 'too_many_pending', '  (the pairing refusal)');
my $x = request_code('u11');
is($x->{status}, 429, 'the eleventh request from that address is refused at the edge');
is($x->{json}{error} // '', 'too_many_attempts', '  by the per-address policy (too_many_attempts)');
like($x->{headers}{'retry-after'} // '', qr/^\d+$/, '  with Retry-After');
is(request_code('u12', from => '127.0.0.6')->{json}{error} // '', 'too_many_pending',
    'another address is not locked (it gets the pairing answer)');
is(request_code('u13', platform => 'irc', from => '127.0.0.7')->{status}, 400, 'a platform outside platforms= is refused with 400');

# admin endpoints: loopback only
my $pend = http_get($P, '/pairing/admin/pending', from => '127.0.0.2');
is($pend->{status}, 403, 'the pending listing from a non-loopback address (127.0.0.2) is denied');
$pend = http_get($P, '/pairing/admin/pending');
is($pend->{status}, 200, 'from 127.0.0.1 it answers 200');
is(scalar @{ $pend->{json}{pending} // [] }, 3, '  with the three pending codes');
my $code = $r[0]{json}{code} // '';
is(http_post_json($P, '/pairing/admin/approve', { platform => 'telegram', code => $code }, from => '127.0.0.2')->{status}, 403,
    'an approval from 127.0.0.2 is denied');
my $a = http_post_json($P, '/pairing/admin/approve', { platform => 'telegram', code => lc $code });
is($a->{status}, 200, 'an approval from 127.0.0.1 pairs the user');
is($a->{json}{user_id} // '', 'u1', '  u1');
is(http_get($P, '/pairing/admin/approved', from => '127.0.0.2')->{status}, 403, 'the approved listing from 127.0.0.2 is denied');
is(http($P, 'DELETE', '/pairing/admin/approved?platform=telegram&user_id=u1', from => '127.0.0.2')->{status}, 403,
    'a revocation from 127.0.0.2 is denied');

# the bot, for paired users from the gateway only
my $b = http_get($P, '/bot/echo', headers => { 'X-Platform' => 'telegram', 'X-User-Id' => 'u1' });
is($b->{status}, 200, 'the paired user reaches the bot');
is($b->{json}{path} // '', '/echo', '  under the path without /bot');
is($b->{json}{headers}{'x-pairguard-user'} // '', 'u1', '  with X-Pairguard-User');
is(http_get($P, '/bot/echo', headers => { 'X-Platform' => 'telegram', 'X-User-Id' => 'u2' })->{status}, 403,
    'a user with a pending code is not paired (403)');
is(http_get($P, '/bot/echo', headers => { 'X-Platform' => 'telegram', 'X-User-Id' => 'u1' }, from => '127.0.0.2')->{status}, 403,
    'the paired user from outside the gateway addresses is refused');

my $rv = http($P, 'DELETE', '/pairing/admin/approved?platform=telegram&user_id=u1');
is($rv->{status}, 200, 'the owner revokes from loopback');
is(http_get($P, '/bot/echo', headers => { 'X-Platform' => 'telegram', 'X-User-Id' => 'u1' })->{status}, 403,
    'and the user is refused at once');

$ng->stop;
like($ng->error_log, qr/\[notice\].*pairguard: pairing approved, platform "telegram"/, 'the approval is logged at notice');

done();
