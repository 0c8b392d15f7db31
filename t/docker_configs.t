# docker-compose.yml and its Sentinel variant are kept right without a Docker
# engine: the YAML parses, every service named in depends_on exists, the
# edges run a configuration the image installs, and `nginx -t` with the
# built module accepts both edge configurations (container names and paths
# replaced by loopback ones).
use 5.036;
use FindBin;
use lib "$FindBin::Bin/lib";
use Test::More;
use PgTest;

my $root = root_dir();
my $py = <<'PY';
import sys, yaml, json
merged = {}
for f in sys.argv[1:]:
    d = yaml.safe_load(open(f))
    for name, svc in (d.get("services") or {}).items():
        merged.setdefault(name, {}).update(svc)
print(json.dumps(merged))
PY
my $pyfile = write_file(testdir() . '/compose.py', $py);
my $dockerfile = read_file("$root/docker/Dockerfile");

for my $variant (['docker-compose.yml'], ['docker-compose.yml', 'docker-compose.sentinel.yml']) {
    my $what = join ' + ', @$variant;
    my ($rc, $out, $err) = run_cmd(['python3', $pyfile, map { "$root/$_" } @$variant]);
    is($rc, 0, "$what: the YAML parses") or diag $err;
    my $svc = eval { json_decode($out) } // {};
    for my $name (sort keys %$svc) {
        my $dep = $svc->{$name}{depends_on} // {};
        for my $d (ref $dep eq 'HASH' ? keys %$dep : @$dep) {
            ok(exists $svc->{$d}, "$what: $name depends on $d, which exists");
        }
    }
    for my $edge ('edge1', 'edge2') {
        my $cmd = join ' ', @{ $svc->{$edge}{command} // ['nginx', '-c', '/etc/nginx/edge.conf'] };
        my ($conf) = $cmd =~ m{-c (/etc/nginx/\S+)};
        $conf //= '/etc/nginx/edge.conf';
        my ($file) = $conf =~ m{/etc/nginx/(\S+)};
        like($dockerfile, qr{install -m 0644 docker/\Q$file\E \Q$conf\E}, "$what: $edge runs $conf, which the image installs");
    }
}

# nginx -t on both edge configurations
my $dir = testdir();
mkdir "$dir/logs";
for my $file ('edge.conf', 'edge-sentinel.conf') {
    my $c = read_file("$root/docker/$file");
    my $port = free_port();
    $c =~ s{load_module \S+;}{'load_module ' . module_path() . ';'}e;
    $c =~ s{^user .*;\n}{}m;
    $c =~ s{pid /run/nginx\.pid;}{pid $dir/nginx.pid;};
    $c =~ s{/run/pairguard/pairguard\.secret}{secret_file()}e;
    $c =~ s{listen 8080;}{listen 127.0.0.1:$port;};
    $c =~ s{server upstream:8081;}{server 127.0.0.1:1;};
    $c =~ s{pairguard_redis redis:6379}{pairguard_redis 127.0.0.1:6379};
    $c =~ s{sentinel(\d):26379}{127.0.0.$1:26379}g;
    my $common = PgTest::_http_common($dir);
    $c =~ s/^http \{/http {\n    $common/m;
    my $path = write_file("$dir/$file", $c);
    my ($rc, $out, $err) = run_cmd([nginx_binary(), '-t', '-p', "$dir/", '-c', $path, '-e', "$dir/logs/error.log"]);
    is($rc, 0, "nginx -t accepts docker/$file with the module") or diag "$out$err";
}
like(read_file("$root/docker/edge-sentinel.conf"), qr/pairguard_redis sentinel=sentinel1:26379,sentinel2:26379,sentinel3:26379 master=pairguard/,
    'the Sentinel edge finds its master through the three sentinels');
like(read_file("$root/docker/edge-sentinel.conf"), qr/resolver 127\.0\.0\.11/, '  with Docker\'s DNS as resolver (names followed at every reconnection)');
done();
