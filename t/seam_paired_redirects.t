# pairguard_require_paired through internal redirects: a check made in one
# location holds for the next location only for the same platform and user.
# A location that names another platform or user (error_page into a named
# location, try_files, X-Accel-Redirect) checks its own pair; the earlier
# verdict is not carried over (a hostile review found that a telegram user's
# approval let an unpaired whatsapp id through an error_page into a location
# that checks whatsapp).
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
    pairguard_redis 127.0.0.1:%%REDIS_PORT%% timeout=200ms;
    pairguard_secret_file %%SECRET_FILE%%;
    pairguard_pairing_policy code_ttl=1h max_pending=3 request_interval=2s
                             max_failures=5 lockout=1h code_max_failures=5
                             platforms=telegram,whatsapp;

    upstream backend { server 127.0.0.1:%%UPSTREAM_PORT%%; }

    server {
        listen 127.0.0.1:%%PORT%%;

        location = /pair/request { pairguard_pairing request; }
        location = /pair/approve { pairguard_pairing approve; }

        # telegram first; the upstream's 404 goes on to a whatsapp location
        location /tg/ {
            pairguard_require_paired platform=telegram user=$http_x_user_id;
            proxy_intercept_errors on;
            error_page 404 = @wa;
            proxy_pass http://backend/status/;
        }
        location @wa {
            pairguard_require_paired platform=whatsapp user=$http_x_wa_id;
            proxy_set_header X-Pairguard-User $pairguard_user;
            rewrite ^ /echo break;
            proxy_pass http://backend;
        }
        # the same pair again after the redirect
        location /same/ {
            pairguard_require_paired platform=telegram user=$http_x_user_id;
            proxy_intercept_errors on;
            error_page 404 = @same;
            proxy_pass http://backend/status/;
        }
        location @same {
            pairguard_require_paired platform=telegram user=$http_x_user_id;
            proxy_set_header X-Pairguard-User $pairguard_user;
            rewrite ^ /echo break;
            proxy_pass http://backend;
        }
        # try_files into a location that checks another header
        location /tf/ {
            pairguard_require_paired platform=telegram user=$http_x_user_id;
            try_files /nonexistent /other/$uri;
        }
        location /other/ {
            pairguard_require_paired platform=telegram user=$http_x_other_id;
            proxy_set_header X-Pairguard-User $pairguard_user;
            rewrite ^ /echo break;
            proxy_pass http://backend;
        }
        # X-Accel-Redirect from the upstream into a whatsapp location
        location /xa/ {
            pairguard_require_paired platform=telegram user=$http_x_user_id;
            proxy_pass http://127.0.0.1:%%PORT%%/accelsrc/;
        }
        location /accelsrc/ {
            add_header X-Accel-Redirect /internal-wa/x always;
            return 200 "redirected\n";
        }
        location /internal-wa/ {
            internal;
            pairguard_require_paired platform=whatsapp user=$http_x_wa_id;
            proxy_set_header X-Pairguard-User $pairguard_user;
            rewrite ^ /echo break;
            proxy_pass http://backend;
        }
    }
}
CONF
my $ng = start_nginx($conf, redis => $redis, upstream => $up);
my $P  = $ng->port;

sub pair ($platform, $user) {
    my $r = http_post_json($P, '/pair/request', { platform => $platform, user_id => $user });
    is($r->{status}, 201, "a code for $platform $user");
    $r = http_post_json($P, '/pair/approve', { platform => $platform, code => $r->{json}{code} // 'XXXXXXXX' });
    is($r->{status}, 200, "  approved");
}
pair('telegram', '111');
pair('whatsapp', '15550001111');
sleep 0.3;    # the approval events reach the cache

sub get ($path, %h) { http_get($P, $path, headers => \%h) }
sub seen_user ($r) { ($r->{json} // {})->{headers}{'x-pairguard-user'} // '' }

my $r = get('/tg/404', 'X-User-Id' => '111', 'X-Wa-Id' => '999');
is($r->{status}, 403, 'a paired telegram user does not carry an unpaired whatsapp id through error_page');
is(($r->{json} // {})->{error} // '', 'not_paired', '  not_paired');
is($up->count('/echo'), 0, '  and the whatsapp location\'s upstream saw nothing');

$r = get('/tg/404', 'X-User-Id' => '111', 'X-Wa-Id' => '15550001111');
is($r->{status}, 200, 'with a paired whatsapp id the whatsapp location answers');
is(seen_user($r), '15550001111', '  and $pairguard_user is the whatsapp user it checked');

$r = get('/tg/404', 'X-User-Id' => '222', 'X-Wa-Id' => '15550001111');
is($r->{status}, 403, 'an unpaired telegram user is refused in the first location');

$r = get('/same/404', 'X-User-Id' => '111');
is($r->{status}, 200, 'the same pair after the redirect passes');
is(seen_user($r), '111', '  as that user');

$r = get('/tf/x', 'X-User-Id' => '111', 'X-Other-Id' => '333');
is($r->{status}, 403, 'try_files into a location that checks another user checks it');
$r = get('/tf/x', 'X-User-Id' => '111', 'X-Other-Id' => '111');
is($r->{status}, 200, '  and passes when it is the paired user');

$r = get('/xa/internal-wa/x', 'X-User-Id' => '111', 'X-Wa-Id' => '999');
is($r->{status}, 403, 'X-Accel-Redirect into a whatsapp location checks the whatsapp id')
    or diag("status $r->{status} body $r->{body}");

done();
