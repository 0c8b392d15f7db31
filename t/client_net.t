# $pairguard_client_net and pairguard_client_prefix: the client address
# (after realip) cut to a network. Keyed on it, one IPv6 client cannot escape
# a lock by rotating through its /64; another /64 is another key;
# IPv4-mapped IPv6 counts as IPv4; the prefix is set per location.
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
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=500ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy net key=$pairguard_client_net max_failures=3 window=1m lockout=1m;
    pairguard_policy bin key=$binary_remote_addr:$arg_acct max_failures=2 window=1m lockout=1m key_normalize;
    set_real_ip_from 127.0.0.0/8;
    real_ip_header X-Forwarded-For;
    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /net  { return 200 "$pairguard_client_net\n"; }
        location = /net48 { pairguard_client_prefix 24 48; return 200 "$pairguard_client_net\n"; }
        location = /login_bin {
            pairguard bin;
            rewrite ^ /status/401 break;
            proxy_pass http://backend;
        }
        location = /login {
            pairguard net;
            rewrite ^ /status/401 break;
            proxy_pass http://backend;
        }
    }
}
CONF
my $P = $ng->port;
sub net ($path, $ip) { my $r = http($P, 'GET', $path, headers => { 'X-Forwarded-For' => $ip }); chomp(my $b = $r->{body}); $b }

is(net('/net', '2001:db8:1:2:aaaa:bbbb:cccc:dddd'), '2001:db8:1:2::/64', 'an IPv6 client is its /64 by default');
is(net('/net', '10.1.2.3'), '10.1.2.3/32', 'an IPv4 client is its address by default');
is(net('/net', '::ffff:10.1.2.3'), '10.1.2.3/32', 'IPv4-mapped IPv6 is treated as IPv4');
is(net('/net48', '2001:db8:1:2:aaaa::1'), '2001:db8:1::/48', 'pairguard_client_prefix 24 48: a /48');
is(net('/net48', '10.1.2.3'), '10.1.2.0/24', '  and a /24');

my @st = map { http($P, 'POST', '/login', headers => { 'X-Forwarded-For' => "2001:db8:7:7::$_" })->{status} } 1 .. 5;
is("@st", '401 401 401 429 429', 'five addresses of one /64 share one lock');
is(http($P, 'POST', '/login', headers => { 'X-Forwarded-For' => '2001:db8:7:8::1' })->{status}, 401,
    'another /64 is not locked');
is(http($P, 'POST', '/login', headers => { 'X-Forwarded-For' => '::1' })->{status}, 401, 'nor is ::1');

# key_normalize folds each value of the request on its own, never the bytes
# of $binary_remote_addr: 10.1.2.70 ends in 0x46 ("F"), 10.1.2.102 in 0x66
# ("f"); folded as one string they would be one key
sub bin ($ip, $account) {
    http($P, 'POST', "/login_bin?acct=$account", headers => { 'X-Forwarded-For' => $ip })->{status};
}
@st = (bin('10.1.2.70', 'Bob'), bin('10.1.2.70', '%20BOB%09'), bin('10.1.2.70', 'bob'));
is("@st", '401 401 429', 'key_normalize: "Bob" and " BOB\t" from one address are one key, locked after two');
is(bin('10.1.2.102', 'bob'), 401, '  another address whose last byte folds onto it is another key');
is(bin('10.1.2.70', 'alice'), 401, '  another account from the locked address is another key');
done();
