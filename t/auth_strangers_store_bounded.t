# What unauthenticated clients can make in Redis is bounded (issue 8 item 8,
# the auth half): HELLO stores nothing; challenges and Haystack client-first
# steps spend the address's `max_pending` starts, and past them answer as
# usual but store nothing; wrong passwords for many names make at most
# `max_failures` user counters per address, even all at once; every key they
# make expires; a successful login gives the address its starts back.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use MIME::Base64 qw(encode_base64);
use PgTest;
use PgAuth;

my $redis = start_redis();
my $up    = start_upstream();
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=500ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_auth_policy max_pending=5 max_failures=%%MAXF%% lockout=1m argon2_m=64 argon2_t=1;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /auth/login     { pairguard_auth password; }
        location = /auth/challenge { pairguard_auth challenge; }
        location = /auth/verify    { pairguard_auth verify; }
        location = /api/about {
            pairguard_auth haystack;
            proxy_pass http://backend/echo;
        }
    }
}
CONF
my $ng = start_nginx($conf, redis => $redis, upstream => $up, vars => { maxf => 50 });
my $P  = $ng->port;

my $dir = testdir();
system('openssl', 'genpkey', '-algorithm', 'ed25519', '-out', "$dir/k.key") == 0 or die;
system('openssl', 'pkey', '-in', "$dir/k.key", '-pubout', '-out', "$dir/k.pub") == 0 or die;
ctl_auth($redis, undef, qw(user add erin --pubkey), "$dir/k.pub");
ctl_auth($redis, "grace pass\n", qw(user add grace --password-stdin));

sub keys_now () { scalar @{ $redis->cmd('KEYS', 'pairguard:*') } }
# (the event stream has no TTL: it is capped at ~10 000 entries, XADD MAXLEN)
sub unexpiring () { join ' ', grep { $redis->cmd('PTTL', $_) < 0 && !/:user$|auth:users$|\{events\}-stream$/ } @{ $redis->cmd('KEYS', 'pairguard:*') } }
my $base = keys_now();

my @hello = map { http_get($P, '/api/about', headers => { Authorization => 'HELLO username=' . b64url("stranger$_") })->{status} } 1 .. 30;
is(join(',', keys %{{ map { $_ => 1 } @hello }}), '401', '30 HELLOs for 30 strangers: 401 each');
is(keys_now(), $base, '  and not one key in Redis');

my @ch = map { http_post_json($P, '/auth/challenge', { user => "nobody$_" }, from => '127.0.0.5')->{status} } 1 .. 20;
is(join(',', keys %{{ map { $_ => 1 } @ch }}), '200', '20 challenges for 20 unknown users from one address: 200 each');
# 5 challenge hashes, the address's starts counter
is(keys_now(), $base + 5 + 1, '  only max_pending=5 of them stored (and the address counter)');

my @first = map {
    haystack_login($P, '/api/about', "ghost$_", 'x', stop_after => 'first', from => '127.0.0.6')->{first}{status}
} 1 .. 20;
is(join(',', keys %{{ map { $_ => 1 } @first }}), '401', '20 client-first steps from another address: 401 each');
is(keys_now(), $base + 6 + 5 + 1, '  only 5 handshakes stored (and that address counter)');
is(unexpiring(), '', 'every key strangers made expires');

# past its starts, an address still gets answers of the usual shape, and a
# login (here: erin's) fails at verify; a successful login from the address
# (a password login stores nothing before its proof, so it spends no start)
# gives the address its starts back
sub erin_login ($from) {
    my $c = http_post_json($P, '/auth/challenge', { user => 'erin' }, from => $from);
    write_file("$dir/msg", "pairguard-auth-v1\nlocalhost\nerin\n$c->{json}{nonce}");
    system('openssl', 'pkeyutl', '-sign', '-inkey', "$dir/k.key", '-rawin', '-in', "$dir/msg", '-out', "$dir/sig") == 0
        or die;
    my $sig = encode_base64(read_file("$dir/sig"), '');
    return http_post_json($P, '/auth/verify', { user => 'erin', signature => $sig }, from => $from)->{status};
}
is(erin_login('127.0.0.5'), 403, 'from the spent address, even erin with her key fails at verify');
is(erin_login('127.0.0.7'), 200, 'from another address she logs in');
my $s = haystack_login($P, '/api/about', 'grace', 'grace pass', from => '127.0.0.6');
is($s->{final}{status}, 403, 'grace from the spent address fails at the proof');
is(http_post_json($P, '/auth/login', { user => 'grace', password => 'grace pass' }, from => '127.0.0.5')->{status}, 200,
   'a password login from the spent address succeeds');
is(erin_login('127.0.0.5'), 200, '  and gives it its starts back: erin logs in from there');

# wrong passwords for 30 names at once from one address (max_failures=3 here)
my $strict = start_nginx($conf, redis => $redis, upstream => $up, vars => { maxf => 3 });
my $before = keys_now();
my @pw = http_burst($strict->port, 30, sub ($i) {
    { method => 'POST', path => '/auth/login', json => { user => "victim$i", password => 'guess' }, from => '127.0.0.8' }
});
is(join(',', sort keys %{{ map { $_ => 1 } @pw }}), '403', '30 wrong passwords for 30 names at once: 403 each');
my $counters = grep { $redis->cmd('EXISTS', user_base("victim$_") . ':fail') || $redis->cmd('EXISTS', user_base("victim$_") . ':lock') } 0 .. 29;
ok($counters <= 3, "  at most max_failures=3 user counters made ($counters)");
is(unexpiring(), '', '  and they expire');

done();
