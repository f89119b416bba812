// Managed by zanuri (node-app); edits here are overwritten.
// What PM2 runs (https://pm2.keymetrics.io/docs/usage/application-declaration/): zanuri starts it
// with `pm2 startOrReload` and `pm2 save`; the pm2 unit resurrects the saved list at start.
module.exports = {
  apps: [{
    name: {{name}},
    script: {{script}},
    cwd: {{cwd}},
    instances: {{instances}},
    exec_mode: {{execMode}},
    env: {
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: {{port}},
    },
{{#maxMemoryRestart}}
    max_memory_restart: {{maxMemoryRestart}},
{{/maxMemoryRestart}}
    merge_logs: true,
    time: true,
  }],
};
