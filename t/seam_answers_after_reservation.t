# A reservation is settled with what the request was answered after it:
#
# - an auth_request's 401 decides the request even when `error_page 401 =
#   @login` turns it into a 302 (the oauth2-proxy pattern): it counts as a
#   failure, and the auth service sees no more than max_failures guesses;
# - a mirror's answer goes nowhere: it does not count;
# - an upstream answer from before the reservation (an unguarded location
#   tried first, `error_page 404 = /app` into the guarded one) is not the
#   guarded location's: four good logins stay four successes;
# - an upstream failure after the reservation still counts when an
#   error_page turns it into a 200 from an unguarded location;
# - a refusal a dry-run location let through is carried out by an enforcing
#   location the request reaches after it.
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my $redis = start_redis();
my $up    = start_upstream();
my $conf  = <<'CONF';
http {
    %%HTTP_COMMON%%
    pairguard_redis 127.0.0.1:%%REDIS_PORT%%;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_policy acct key=$http_x_account max_failures=2 window=60s lockout=60s;
    pairguard_policy cli  key=$http_x_client max_failures=2 window=60s lockout=60s;
    pairguard_policy dev  key=$http_x_dev max_failures=2 window=60s lockout=60s;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        # an auth service decides; its 401 becomes a redirect to a login page
        location = /api {
            pairguard acct;
            auth_request /auth;
            error_page 401 = @login;
            proxy_pass http://backend/status/200;
        }
        location = /auth {
            internal;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_pass http://backend/status/$http_x_auth;
        }
        location @login { return 302 /login-page; }
        # an auth location that answers in its rewrite phase (before the
        # PREACCESS phase a subrequest is otherwise noted in)
        location = /api-local {
            pairguard acct;
            auth_request /auth-local;
            error_page 401 = @login;
            proxy_pass http://backend/status/200;
        }
        location = /auth-local {
            internal;
            if ($http_x_token != "good") { return 401; }
            return 204;
        }

        # a mirror whose backend refuses everything
        location = /mirrored {
            pairguard acct;
            mirror /shadow;
            proxy_pass http://backend/status/200;
        }
        location = /shadow {
            internal;
            proxy_pass http://backend/status/401;
        }

        # a static or CDN try first, the guarded application on its 404
        location = /login {
            proxy_pass http://backend/status/404;
            proxy_intercept_errors on;
            error_page 404 = /app;
        }
        location = /app {
            internal;
            pairguard acct;
            proxy_pass http://backend/status/$http_x_app;
        }

        # a guarded guess whose 401 becomes a friendly 200 elsewhere
        location = /guess {
            pairguard acct;
            proxy_intercept_errors on;
            error_page 401 = /sorry;
            proxy_pass http://backend/status/401;
        }
        location = /sorry { return 200 "sorry\n"; }

        # a dry-run location (a rollout) whose 404 goes on to an enforcing one
        location = /watch {
            pairguard acct;
            pairguard_dry_run on;
            proxy_intercept_errors on;
            error_page 404 = /enforce;
            proxy_pass http://backend/status/404;
        }
        location = /enforce {
            pairguard acct;
            proxy_pass http://backend/status/401;
        }
        # two policies in the dry run, one of them enforced after it
        location = /watch2 {
            pairguard cli;
            pairguard acct;
            pairguard_dry_run on;
            proxy_intercept_errors on;
            error_page 404 = /enforce;
            proxy_pass http://backend/status/404;
        }
        # the dry run's own upstream answers the guess, an enforcing
        # location serves the error page
        location = /watch3 {
            pairguard cli;
            pairguard acct;
            pairguard_dry_run on;
            proxy_intercept_errors on;
            error_page 401 = /sorry-enforced;
            proxy_pass http://backend/status/401;
        }
        location = /sorry-enforced {
            pairguard acct;
            proxy_pass http://backend/status/200;
        }
        # the enforcing location also holds a policy the dry run never had
        location = /watch4 {
            pairguard cli;
            pairguard acct;
            pairguard_dry_run on;
            proxy_intercept_errors on;
            error_page 401 = /sorry4;
            proxy_pass http://backend/status/401;
        }
        location = /sorry4 {
            pairguard acct;
            pairguard dev;
            proxy_pass http://backend/status/200;
        }
        location = /only-dev {
            pairguard dev;
            proxy_pass http://backend/status/200;
        }
        location = /enforce-cli {
            pairguard cli;
            proxy_pass http://backend/status/401;
        }
    }
}
CONF
my $ng = start_nginx($conf, redis => $redis, upstream => $up, workers => 1);
my $P  = $ng->port;

sub statuses ($path, $n, %h) {
    return join ' ', map { http_get($P, $path, headers => {%h})->{status} } 1 .. $n;
}

# settles go out after the answer: wait until the account's keys are gone
# (successes release their reservation) or still there (failures)
sub keys_settle ($want) {
    PgTest::wait_until(sub { scalar($redis->guard_keys) == $want }, timeout => 3);
    return scalar($redis->guard_keys);
}

# --- auth_request + error_page -----------------------------------------------
is(statuses('/api', 6, 'X-Account' => 'alice', 'X-Auth' => 401), '302 302 429 429 429 429',
   'auth_request 401s turned into 302s by error_page count: the third is refused');
is($up->count('/status/401'), 2, 'the auth service saw max_failures guesses, no more');
is($up->count('/status/200'), 0, 'and the application none');
$redis->cmd('FLUSHALL');
$up->reset;
is(statuses('/api', 4, 'X-Account' => 'bob', 'X-Auth' => 200), '200 200 200 200',
   'auth_request 200 and the application 200: successes');
is(keys_settle(0), 0, 'nothing counted for them');
is(statuses('/api', 4, 'X-Account' => 'bob', 'X-Auth' => 204), '200 200 200 200',
   'an auth service answering 204: successes too');
is(keys_settle(0), 0, 'nothing counted');

$redis->cmd('FLUSHALL');
is(statuses('/api-local', 4, 'X-Account' => 'kim', 'X-Token' => 'bad'), '302 302 429 429',
   'an auth location answering 401 in its rewrite phase counts too');
is(statuses('/api-local', 2, 'X-Account' => 'lee', 'X-Token' => 'good'), '200 200',
   '  and its 204 lets the request on');

# --- mirror ------------------------------------------------------------------
$redis->cmd('FLUSHALL');
$up->reset;
is(statuses('/mirrored', 4, 'X-Account' => 'carol'), '200 200 200 200',
   'a mirror backend answering 401 does not count against the request');
ok(PgTest::wait_until(sub { $up->count('/status/401') == 4 }, timeout => 3), 'the mirror did get every request');
is(keys_settle(0), 0, 'nothing counted for carol');

# --- an upstream answer from before the reservation --------------------------
$redis->cmd('FLUSHALL');
$up->reset;
is(statuses('/login', 4, 'X-Account' => 'dave', 'X-App' => 200), '200 200 200 200',
   'four good logins through the fallback location: four successes');
is(keys_settle(0), 0, 'the first location\'s 404 did not count as a guess');
is(statuses('/login', 3, 'X-Account' => 'erin', 'X-App' => 401), '401 401 429',
   'wrong guesses through the fallback location still count');
is($up->count('/status/401'), 2, 'the application saw two of them');

# --- an upstream failure after the reservation -------------------------------
$redis->cmd('FLUSHALL');
$up->reset;
is(statuses('/guess', 3, 'X-Account' => 'frank'), '200 200 429',
   'a 401 that error_page turns into a 200 still counts');
is($up->count('/status/401'), 2, 'the application saw two guesses');

# --- dry run, then an enforcing location --------------------------------------
$redis->cmd('FLUSHALL');
$up->reset;
is(statuses('/enforce', 3, 'X-Account' => 'gina'), '401 401 429', 'gina is locked where the policy is enforced');
$up->reset;
my $r = http_get($P, '/watch', headers => { 'X-Account' => 'gina' });
is($r->{status}, 429, 'a dry-run location lets the locked key through, the enforcing one after it refuses');
is($r->{json}{error}, 'too_many_attempts', '  too_many_attempts');
ok($r->{headers}{'retry-after'} > 0, '  with Retry-After');
is($up->count('/status/401'), 0, 'the locked key did not reach the enforcing location\'s upstream');
is(statuses('/watch', 2, 'X-Account' => 'hank'), '401 401', 'a key the dry run would not refuse goes on as before');

# the dry run refuses on one policy (cli), the enforcing location holds
# another (acct): acct is reserved there, and counted once
$redis->cmd('FLUSHALL');
is(statuses('/enforce-cli', 3, 'X-Client' => 'c1'), '401 401 429', 'client c1 is locked');
$up->reset;
is(statuses('/watch2', 3, 'X-Client' => 'c1', 'X-Account' => 'ivy'), '401 401 429',
   'a dry run refusing on c1 lets ivy on to the enforcing location: two guesses count once each, the third is refused');
is($up->count('/status/401'), 2, 'the enforcing location\'s upstream saw two');
# both locked in the dry run: the enforcing one is carried out
is(statuses('/enforce', 3, 'X-Account' => 'jo'), '401 401 429', 'jo is locked too');
$up->reset;
is(statuses('/watch2', 1, 'X-Client' => 'c1', 'X-Account' => 'jo'), '429',
   'c1 and jo both locked in the dry run: the enforcing location refuses jo');
is($up->count('/status/401'), 0, '  before its upstream');
# the answer the dry run's upstream gave before the enforcing location
# reserved the policy again still counts for it
$up->reset;
is(statuses('/watch3', 3, 'X-Client' => 'c1', 'X-Account' => 'kai'), '200 200 429',
   'a guess answered 401 in the dry run, then served by an enforcing location, counts: the third is refused');
is($up->count('/status/401'), 3, 'the dry run let all three reach its own upstream, as a dry run does');
# a policy only the enforcing location holds counts from its own
# reservation: the dry run's 401 before it is not its guess
my $n = 0;
is(join(' ', map { http_get($P, '/watch4', headers => { 'X-Client' => 'c1', 'X-Account' => 'new' . ++$n,
                                                         'X-Dev' => 'd1' })->{status} } 1 .. 3), '200 200 200',
   'three new accounts through the dry run into an enforcing location with another policy: all served');
is(http_get($P, '/only-dev', headers => { 'X-Dev' => 'd1' })->{status}, 200,
   '  and that other policy counted no failure (it only ever saw 200s)');

done();
