/**
 * The nginx + nchan peer: one worker (a fair match for one Node process), event-stream
 * subscribers on `/sub/<channel>`, publishers on `/pub/<channel>`; loopback only.
 * nchan keeps its default message buffer (10 messages per channel) and timeout.
 */
export interface NchanConfigInput {
  /** Loopback port to listen on. */
  readonly port: number
  /** A private temp directory: pid, logs, temp paths. */
  readonly dir: string
  /** Worker connections and open files (the process limit is 20,000 here). */
  readonly maxConnections: number
  /** Where the distribution put the nchan module. */
  readonly modulePath: string
}

/** The nginx.conf text. */
export function nchanConfig(input: NchanConfigInput): string {
  const { port, dir, maxConnections, modulePath } = input
  return `load_module ${modulePath};
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile ${maxConnections};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events {
  worker_connections ${maxConnections};
  multi_accept on;
}
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_buffer_size 64k;
  nchan_shared_memory_size 256M;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location ~ ^/sub/(.+)$ {
      nchan_subscriber eventsource;
      nchan_channel_id $1;
      nchan_channel_id_split_delimiter ",";
    }
    location ~ ^/pub/(.+)$ {
      nchan_publisher;
      nchan_channel_id $1;
      nchan_channel_id_split_delimiter ",";
    }
  }
}
`
}
