# A burst of concurrent wrong passwords for one user. `pairguard_auth
# password` checks the user's lock before it hashes and counts a failure
# after: every attempt already in flight when the lock starts is still
# hashed (a hostile review sent 600 at once: 600 Argon2id hashes, and a
# legitimate login waited 13 s behind them). A guard policy in front of the
# login, keyed on the body's user (conf/auth.conf does so), reserves each
# attempt before the endpoint sees it: at most max_failures of one user's
# guesses are hashed, the rest are refused with 429 without any hashing.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;
use PgAuth;

my $redis = start_redis();
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=2s;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_auth_policy session_ttl=1h max_failures=5 lockout=15m argon2_m=19456 argon2_t=2;
    pairguard_policy login_user key=$pairguard_body_user key_normalize max_failures=5 window=15m lockout=15m;

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /auth/login {
            pairguard login_user;
            pairguard_auth password;
        }
        location = /bare/login {
            pairguard_auth password;
        }
    }
}
CONF
my $ng = start_nginx($conf, redis => $redis);
my $P  = $ng->port;
my ($rc, undef, $err) = ctl_auth($redis, "carol-pass\n", qw(user add carol --password-stdin));
is($rc, 0, 'pairguardctl adds carol') or diag($err);
($rc) = ctl_auth($redis, "alice-pass\n", qw(user add alice --password-stdin));
is($rc, 0, 'and alice');

sub hashed () { scalar(() = $ng->error_log =~ /auth refused \(password\)/g) }

my $N = 60;
my @res = http_burst_responses([$P], $N, sub ($i) {
    { method => 'POST', path => '/auth/login', json => { user => 'carol', password => "wrong$i" } }
});
my %by;
$by{ $_->{status} // 'none' }++ for @res;
is($by{403} // 0, 5, "of $N concurrent wrong passwords for one user, 5 are checked (403)")
    or diag(explain(\%by));
is($by{429} // 0, $N - 5, '  and the others are refused by the guard (429)');
is(hashed(), 5, '  only 5 were hashed');

my $r = http_post_json($P, '/auth/login', { user => 'Carol', password => 'carol-pass' });
is($r->{status}, 429, 'the right password for the locked user (spelled otherwise) is refused too');
$r = http_post_json($P, '/auth/login', { user => 'alice', password => 'alice-pass' }, from => '127.0.0.2');
is($r->{status}, 200, 'another user logs in meanwhile, from another address (the burst\'s is locked by the auth policy)');

# without the guard, every attempt in flight is hashed: what the guard is for
my $before = hashed();
@res = http_burst_responses([$P], 20, sub ($i) {
    { method => 'POST', path => '/bare/login', json => { user => 'dave', password => "wrong$i" }, from => '127.0.0.3' }
});
cmp_ok(hashed() - $before, '>', 5, 'the bare endpoint hashed more than max_failures of a burst (documented)');

done();
