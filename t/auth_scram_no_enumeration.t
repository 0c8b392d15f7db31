# A Haystack exchange does not tell who exists (SPEC section 4, issue 8
# item 5): a known user shows its real salt and iteration count whether it,
# or the caller's address, is locked or not, and then fails at the proof; an
# unknown user shows a salt and count that never change. Probe, lock
# yourself, probe again: nothing moves.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;
use PgAuth;

my $redis = start_redis();
my $up    = start_upstream();
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=500ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_auth_policy max_failures=2 lockout=1m;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;
        location = /api/about {
            pairguard_auth haystack;
            proxy_pass http://backend/echo;
        }
    }
}
CONF
my $ng = start_nginx($conf, redis => $redis, upstream => $up);
my $P  = $ng->port;

my $PW = 'grace pass';
my ($rc, undef, $err) = ctl_auth($redis, "$PW\n", qw(user add grace --password-stdin));
is($rc, 0, 'pairguardctl adds grace with SCRAM credentials') or diag($err);
my ($real_iter, $real_salt) = ($redis->cmd('HGET', user_base('grace') . ':user', 'scram') // '') =~ /\$(\d+):([^\$]+)\$/;
ok($real_salt, "grace's stored salt is known to the test");

sub probe ($user, $from = '127.0.0.1') {
    my $s = haystack_login($P, '/api/about', $user, 'x', stop_after => 'first', from => $from);
    return ($s->{first}{status} // 0) . " s=" . ($s->{salt} // '') . " i=" . ($s->{iterations} // '');
}

my $grace = probe('grace');
my $ghost = probe('ghost');
is($grace, "401 s=$real_salt i=$real_iter", 'grace (known) shows her real salt and count');
like($ghost, qr/^401 s=[A-Za-z0-9+\/]+=* i=10000$/, 'ghost (unknown) shows a salt and the usual count');
isnt($ghost, $grace, '  not the same salt as grace');

# lock grace, and the address 127.0.0.2 with her
for (1 .. 2) {
    my $s = haystack_login($P, '/api/about', 'grace', $PW, wrong_pw => "bad$_", from => '127.0.0.2');
    is($s->{final}{status}, 403, "wrong proof $_ for grace: 403");
}
is(probe('grace'), $grace, 'grace locked: the same real salt and count');
is(probe('grace', '127.0.0.2'), $grace, 'grace locked, from a locked address: the same');
my $locked = haystack_login($P, '/api/about', 'grace', $PW);
is($locked->{first}{status}, 401, 'the locked exchange runs to client-final');
is($locked->{final}{status} . ' "' . $locked->{final}{body} . '"', '403 ""',
   '  and the right password fails at the proof with a bare 403');

# lock ghost, and the address 127.0.0.3 with it
for (1 .. 2) {
    my $s = haystack_login($P, '/api/about', 'ghost', 'guess', from => '127.0.0.3');
    is($s->{final}{status}, 403, "wrong proof $_ for ghost: 403");
}
is(probe('ghost'), $ghost, "ghost locked: the same salt and count as before");
is(probe('ghost', '127.0.0.3'), $ghost, '  also from a locked address');
is(probe('grace', '127.0.0.3'), $grace, 'grace from a locked address: her real salt');
is(probe('ghost'), $ghost, "ghost's salt is stable on every attempt");

done();
